/**
 * English messages of the payer's pages. The Japanese catalogue (ja.ts) has the type `Messages`
 * derived from this one: a key missing there, or a parameter of another type, fails the type check.
 * Messages with parameters are functions.
 */
export const en = {
  languageSwitch: 'Language',
  shopName: 'Kessai Tea House',
  // Line items (order page and wallet confirmation)
  items: {
    item: 'Item',
    quantity: 'Quantity',
    qty: 'Qty',
    price: 'Price',
    amount: 'Amount',
    total: 'Total',
    captured: 'Captured',
    refunded: 'Refunded',
  },
  store: {
    title: 'Kessai Tea House: shop',
    skipToCart: 'Skip to the cart',
    tagline: 'a demonstration shop paid through Kessai',
    navLabel: 'Shop',
    cartLink: (count: number) => `Cart (${count})`,
    catalogueFailed: (detail: string) => `The catalogue cannot be loaded: ${detail}`,
    added: (name: string, total: string) => `${name} added. Cart total ${total}.`,
    handleInvalid: 'A wallet handle is the credential id the wallet shows: cred_ followed by 26 letters and digits.',
    checkoutFailed: (detail: string) => `Checkout failed: ${detail}`,
    products: 'Products',
    loading: 'Loading the catalogue…',
    addToCart: 'Add to cart',
    addLabel: (name: string) => `Add to cart: ${name}`,
    cart: 'Cart',
    cartEmpty: 'The cart is empty.',
    cartCaption: 'Items in the cart',
    howToPay: 'How to pay',
    payByLink: 'Payment link and QR code (open it in your wallet or on your phone)',
    payToWallet: 'Send it to my wallet',
    walletHandle: 'Wallet handle',
    handleHint: 'The credential id your wallet shows (cred_…).',
    checkOut: (total: string) => `Check out ${total}`,
  },
  order: {
    title: 'Kessai Tea House: your order',
    tagline: 'your order',
    back: 'Back to the shop',
    loading: 'Loading the order…',
    order: 'Order',
    status: 'Status:',
    reason: 'reason:',
    caption: 'Items of the order',
    paymentRequest: 'Payment request',
    authorization: 'authorization',
    history: 'What happened',
    pay: 'Pay',
    scan:
      'Scan the code with your phone, or open the link in your Kessai wallet. If you chose to send it to ' +
      'your wallet, it is waiting there.',
    qrAlt: (link: string) => `QR code of the payment link ${link}`,
    updates: 'This page updates by itself when the payment is approved or declined.',
    nothingToPay: 'Nothing more to pay for this order.',
    noLink: 'No payment link.',
    needsId: 'This page needs an order id (…/order/?id=ord_…).',
    statuses: {
      awaiting_payment: 'Waiting for payment',
      paid: 'Approved',
      captured: 'Approved and captured',
      declined: 'Declined',
      cancelled: 'Cancelled',
      expired: 'Expired',
      voided: 'Voided',
      refunded: 'Refunded',
      partially_refunded: 'Partly refunded',
    },
  },
  wallet: {
    title: 'Kessai wallet',
    heading: 'Kessai wallet',
    tagline: 'your terminal in the browser',
    storageFailed: (detail: string) => `This browser's storage cannot be read: ${detail}`,
    opening: 'Opening the wallet…',
    requestWaiting:
      'A payment request is waiting for you: enroll a card or import your wallet file, and it opens next.',
    declineReasons: {
      pin_incorrect: 'the PIN is not correct',
      pin_locked: 'the card is locked after too many wrong PINs',
      insufficient_funds: 'not enough funds',
      enrollment_refused: 'your bank refused the card: check the name, expiry and PIN',
      credential_limit_reached: 'this card has the most devices your bank allows: revoke one first',
      card_expired: 'the card has expired',
      livemode_mismatch: 'a test card pays only test requests, and a real card only real ones',
      payer_declined: 'you declined it',
    },
    statuses: {
      approved: 'approved',
      captured: 'captured',
      pending: 'pending',
      authorizing: 'authorizing',
      declined: 'declined',
    },
    enroll: {
      title: 'Enroll a card',
      intro:
        'Your bank checks the card and the PIN and registers this browser. The PIN is encrypted here ' +
        'for your bank alone; the card details are too when your bank asks for it, otherwise they pass ' +
        'the authentication server once, to be sealed. This browser keeps only the sealed credential.',
      holder: 'Name on the card',
      card: 'Card number',
      cardHint: '12 to 19 digits; spaces are fine.',
      expiry: 'Expiry (MM/YY)',
      pin: 'PIN',
      pinHint:
        'Your bank checks it to confirm the card is yours. It is encrypted for your bank on this page; ' +
        'the authentication server cannot read it.',
      passphrase: 'Passphrase for wallet files',
      passphraseHint: (min: number) =>
        `At least ${min} characters. It protects the device key in an exported wallet file; you need it ` +
        `to import the file elsewhere.`,
      confirm: 'Passphrase again',
      submit: 'Enroll',
      busy: 'Enrolling…',
      refused: (detail: string) => `Enrollment refused: ${detail}`,
      failed: (detail: string) => `Enrollment failed: ${detail}`,
      errors: {
        holderMissing: 'Enter the name as printed on the card.',
        holderLong: 'The name is at most 64 characters.',
        cardMissing: 'Enter the card number.',
        cardDigits: 'A card number has digits only (spaces are fine).',
        cardLength: 'A card number has 12 to 19 digits.',
        cardLuhn: 'This card number has a typing error (its check digit does not match).',
        expiryMissing: 'Enter the expiry date as MM/YY.',
        expiryFormat: 'Write the expiry as MM/YY, for example 12/34.',
        expired: 'This card has expired.',
        pin: 'Enter the card’s PIN: 4 to 12 digits.',
        passphrase: (min: number) => `Choose a passphrase of at least ${min} characters.`,
        confirm: 'The two passphrases differ.',
      },
    },
    import: {
      title: 'Import a wallet file',
      intro:
        'A wallet exported from another browser carries its credential here; you need the passphrase ' +
        'chosen at enrollment.',
      chooseFile: 'Choose a wallet file.',
      wrongPassphrase: 'The passphrase does not open this wallet file.',
      file: 'Wallet file',
      passphrase: 'Passphrase',
      submit: 'Import',
      busy: 'Importing…',
    },
    recovery: {
      title: 'Enrolled. Write down your recovery code',
      intro:
        "If you lose this browser and every wallet file, this code revokes the card's credential from " +
        "any device. It is shown only now and is not stored here.",
      done: 'I have written it down',
    },
    confirm: {
      title: 'Confirm the payment',
      test: 'TEST',
      testNotice: 'A test payment request: only a test card pays it, and no real money moves.',
      merchant: 'Merchant',
      verified: 'verified',
      signed: (order: string) =>
        `This request is signed by the authentication server; the signature was checked before it was ` +
        `shown. Order ${order}.`,
      caption: 'Items to pay for',
      validUntil: (when: string) => `Valid until ${when}.`,
      totalsDisagree: 'The items do not add up to the total: do not approve this request.',
      pin: 'PIN',
      pinHint: "Your card's PIN (4 to 12 digits). Only your bank can read it.",
      pinFormat: 'The PIN is 4 to 12 digits.',
      pinWrong: (left: number) =>
        `The PIN is not correct. ${left} ${left === 1 ? 'try' : 'tries'} left before the card locks.`,
      pay: (amount: string) => `Pay ${amount}`,
      paying: 'Paying…',
      decline: 'Decline',
      declining: 'Declining…',
      notNow: 'Not now',
    },
    home: {
      paid: (amount: string, merchant: string) => `Paid ${amount} to ${merchant}.`,
      unknown: (amount: string, merchant: string) =>
        `Not known yet: the bank's answer for ${amount} to ${merchant} was lost; it is being checked. ` +
        `Do not pay again: the history shows the outcome.`,
      notPaid: (reason: string, merchant: string, amount: string) => `Not paid: ${reason} (${merchant}, ${amount}).`,
      requests: 'Payment requests',
      connected: 'Connected: payment requests appear here as they arrive.',
      connecting: 'Connecting…',
      reconnecting: (detail: string) => `Reconnecting${detail ? ` (${detail})` : ''}…`,
      noRequest: 'No payment request is waiting.',
      itemCount: (count: number) => `${count} ${count === 1 ? 'item' : 'items'}`,
      review: 'Review and pay',
      openLink: 'Open a payment link',
      linkHint: 'Paste the link the shop shows (…/pay/pr_…).',
      open: 'Open',
      linkFailed: (detail: string) => `The payment link cannot be opened: ${detail}`,
      history: 'History',
      noPayments: 'No payments yet.',
      historyCaption: 'Payments answered from this wallet, newest first',
      when: 'When',
      merchant: 'Merchant',
      amount: 'Amount',
      result: 'Result',
      thisWallet: 'This wallet',
      handle: 'Wallet handle (give it to a shop to receive its payment requests)',
      copy: 'Copy handle',
      copied: 'Copied.',
      bank: 'Bank',
      imported: 'Imported from a wallet file.',
      enrolled: 'Enrolled in this browser.',
      keyNote:
        'The device key cannot be read out of this browser; a wallet file carries it encrypted under your ' +
        'passphrase.',
      otherServer: (enrolled: string, host: string) => `This wallet was enrolled with ${enrolled}, not ${host}.`,
      export: 'Export to a file',
      remove: 'Remove',
      removeConfirm: 'Remove this wallet from this browser? Without an exported wallet file it cannot be used again.',
    },
  },
};

export type Messages = typeof en;
