/**
 * Every message that crosses a wire in Kessai, as zod schemas (which also give the types).
 * Objects are strict: an unknown field is refused. Strings and lists have limits from limits.ts.
 * docs/protocol.md shows each message with example values that a test checks.
 */
import { z } from 'zod';
import { limits } from './limits.ts';
import { amountPattern, currencies } from './money.ts';
import { expiryPattern } from './card.ts';
import { declineCodes, errorCodes, type ErrorCode } from './errors.ts';
import { sha256Base64url } from './crypto.ts';

const text = (max: number = limits.stringLengthMax) => z.string().min(1).max(max);
const jose = z.string().min(1).max(limits.joseLengthMax).regex(/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]*){2,4}$/, 'compact JOSE');
const prefixedId = (prefix: string) => z.string().regex(new RegExp(`^${prefix}_[0-9a-hjkmnp-tv-z]{26}$`), `${prefix}_ id`);

const moneyDescription = 'An amount in integer minor units of the currency, as a decimal string (JPY 5,700 is "5700"; USD 12.34 is "1234"): never a JSON number.';
export const amountString = z
  .string()
  .max(20)
  .regex(amountPattern, 'non-negative integer string')
  .refine((v) => amountPattern.test(v) && BigInt(v) <= limits.amountMinorMax, 'exceeds amountMinorMax')
  .meta({ description: moneyDescription, examples: ['5700'] });
/** An amount that moves money: at least one minor unit (a zero request or capture is refused; a void releases a hold). */
export const positiveAmountString = amountString
  .refine((v) => v !== '0', 'must be at least 1 minor unit')
  .meta({ description: `${moneyDescription} At least 1.`, examples: ['5700'] });
export const currencyCode = z.enum(currencies);
export const credentialId = prefixedId('cred');
/** A recovery code: 20 Crockford base32 characters (100 bits) in five groups of four. */
export const recoveryCode = z.string().regex(/^[0-9A-HJKMNP-TV-Z]{4}(-[0-9A-HJKMNP-TV-Z]{4}){4}$/, 'recovery code');
export const paymentRequestId = prefixedId('pr');
export const authorizationId = prefixedId('auth');
export const merchantId = prefixedId('mer');
export const refundId = prefixedId('rf');

/** A P-256 public key as JWK: the device key. Private members are refused by strictness. */
export const deviceJwk = z.strictObject({
  kty: z.literal('EC'),
  crv: z.literal('P-256'),
  x: z.string().regex(/^[A-Za-z0-9_-]{43}$/),
  y: z.string().regex(/^[A-Za-z0-9_-]{43}$/),
});

// ---- Enrollment (steps 301–305) ----------------------------------------------------------

const issuerId = z.string().regex(/^[a-z0-9][a-z0-9-]{0,63}$/, 'issuer id');

/** What both kinds of enrollment carry: the id the terminal chose, the issuer it found in the directory, its device key and the PIN block. */
const enrollmentCommon = {
  credential_id: credentialId,
  issuer_id: issuerId,
  device_jwk: deviceJwk,
  /** The PIN, encrypted by the terminal to the issuer's key from the signed directory, bound to the credential id and device key. */
  pin_block: jose,
};

/** Re-seal issuers (embodiment 1): the card data in clear over TLS, as the patent's step 303 sends it; the authentication server seals it. */
export const resealEnrollmentRequest = z.strictObject({
  ...enrollmentCommon,
  holder_name: text(limits.holderNameLengthMax),
  card_number: z.string().min(12).max(23),
  expiry: z.string().regex(expiryPattern, 'MM/YY'),
});

/** Pass-through issuers (embodiment 2): the card data already sealed by the terminal for the issuer; the authentication server never sees it. */
export const passThroughEnrollmentRequest = z.strictObject({
  ...enrollmentCommon,
  sealed_card: jose,
});

export const enrollmentRequest = z.union([resealEnrollmentRequest, passThroughEnrollmentRequest]);
export type EnrollmentRequest = z.infer<typeof enrollmentRequest>;

export const conversionMode = z.enum(['reseal', 'pass_through']);
export type ConversionMode = z.infer<typeof conversionMode>;

/** The issuer as the enrollment answer names it; its keys come only from the signed directory. */
export const issuerSummary = z.strictObject({
  id: issuerId,
  name: text(),
  conversion_mode: conversionMode,
});

export const enrollmentResponse = z.strictObject({
  credential_id: credentialId,
  sealed_credential: jose,
  issuer: issuerSummary,
  /** The issuer's signed receipt (typ kessai-registration+jws): the wallet checks it with the issuer's key from the directory. */
  registration: jose,
  /** The authentication server's JWKS: the terminal verifies signed payment requests with it. */
  auth_jwks_uri: z.url(),
  /** Shown to the payer once, never stored by the terminal: revokes the credential from any device. */
  recovery_code: recoveryCode,
});
export type EnrollmentResponse = z.infer<typeof enrollmentResponse>;

/** Inside the enrollment PIN block. */
export const enrollmentPinPlaintext = z.strictObject({
  pin: z.string().regex(/^[0-9]{4,12}$/),
  cred: credentialId,
  dkt: z.string().regex(/^[A-Za-z0-9_-]{43}$/),
  /** sha256 (base64url) of the normalized card number: the PIN is for this card only (inside the encryption, so no one else sees it). */
  cnh: z.string().regex(/^[A-Za-z0-9_-]{43}$/),
});

/** Payload of the issuer's registration receipt: this credential id, for this device key, at this issuer. */
export const registrationPayload = z.strictObject({
  iss: issuerId,
  cred: credentialId,
  dkt: z.string().regex(/^[A-Za-z0-9_-]{43}$/),
  iat: z.number().int(),
});
export type RegistrationPayload = z.infer<typeof registrationPayload>;

/** Authentication server → issuer (step 303): the card data sealed for the issuer, the device key and the PIN block. */
export const issuerEnrollmentRequest = z.strictObject({
  credential_id: credentialId,
  device_jwk: deviceJwk,
  sealed_credential: jose,
  pin_block: jose,
});
export const issuerEnrollmentResponse = z.strictObject({ registration: jose });

// ---- Revocation of a lost storage, PIN unlock (operator) ------------------------------------

/** The payer's revocation from any device: no device key, only the recovery code (typed, so dashes, spaces and case are forgiven). */
export const revokeCredentialRequest = z.strictObject({ recovery_code: z.string().min(1).max(64) });
export const credentialRevocation = z.strictObject({
  credential_id: credentialId,
  status: z.literal('revoked'),
  revoked_at: z.string(),
  revoked_by: z.enum(['payer', 'operator']),
});
export type CredentialRevocation = z.infer<typeof credentialRevocation>;

/** Operator, settlement server: unlock a card's account (PIN lock) or one credential's PIN lock — never by card number. */
export const cardUnlockRequest = z
  .strictObject({ account_id: z.string().regex(/^acct_[0-9a-hjkmnp-tv-z]{26}$/, 'acct_ id').optional(), credential_id: credentialId.optional() })
  .refine((body) => (body.account_id === undefined) !== (body.credential_id === undefined), 'exactly one of account_id and credential_id');
export const cardUnlockResponse = z.strictObject({ accounts_unlocked: z.number().int().min(0), credentials_unlocked: z.number().int().min(0) });

/** The personal data inside a sealed credential. Only cipher 1/2 ever hold it at rest. */
export const credentialPlaintext = z.strictObject({
  v: z.literal(1),
  holder_name: text(limits.holderNameLengthMax),
  card_number: z.string().regex(/^[0-9]{12,19}$/),
  expiry: z.string().regex(expiryPattern),
  device_jwk: deviceJwk,
});
export type CredentialPlaintext = z.infer<typeof credentialPlaintext>;

// ---- Payment requests (step 402) ---------------------------------------------------------

export const lineItem = z.strictObject({
  description: text(),
  quantity: z.number().int().min(1).max(limits.quantityMax),
  unit_price_minor: amountString,
});
export type LineItem = z.infer<typeof lineItem>;

/** The items hash an approval signs: sha256 (base64url) of JSON [[description, quantity, unit_price_minor], …] in order. */
export function itemsHash(items: readonly LineItem[]): Promise<string> {
  return sha256Base64url(JSON.stringify(items.map((item) => [item.description, item.quantity, item.unit_price_minor])));
}

/**
 * When the issuer moves the money: `manual` (the default) holds it at approval and the merchant
 * captures or voids the hold (step 409); `automatic` posts the whole amount with the approval, one
 * hop fewer, and the request is `captured` at once (refunds as usual).
 */
export const captureMethod = z.enum(['automatic', 'manual']);
export type CaptureMethod = z.infer<typeof captureMethod>;

export const createPaymentRequest = z.strictObject({
  order_id: text(limits.orderIdLengthMax),
  currency: currencyCode,
  amount_minor: positiveAmountString,
  line_items: z.array(lineItem).min(1).max(limits.lineItemsMax),
  /** Push to this wallet; without it the payer opens the payment link. */
  wallet_handle: credentialId.optional(),
  expires_in_seconds: z.number().int().min(limits.paymentRequestTtlMsMin / 1000).max(limits.paymentRequestTtlMsMax / 1000).optional(),
});
export type CreatePaymentRequest = z.infer<typeof createPaymentRequest>;

export const paymentRequestStatus = z.enum(['pending', 'authorizing', 'approved', 'declined', 'cancelled', 'expired', 'captured', 'voided']);
export type PaymentRequestStatus = z.infer<typeof paymentRequestStatus>;

export const paymentRequestView = z.strictObject({
  id: paymentRequestId,
  merchant_id: merchantId,
  order_id: z.string(),
  status: paymentRequestStatus,
  currency: currencyCode,
  amount_minor: amountString,
  captured_minor: amountString,
  line_items: z.array(lineItem),
  payment_link: z.string(),
  created_at: z.string(),
  expires_at: z.string(),
  /** The settlement server's signed decision (step 407), once there is one. */
  authorization: jose.nullable(),
  decline_code: z.string().nullable(),
  /** True when made with a live key (sk_live_…), false with a test key: a key sees only its own mode's objects. */
  livemode: z.boolean(),
});
export type PaymentRequestView = z.infer<typeof paymentRequestView>;

export const captureRequest = z.strictObject({ amount_minor: positiveAmountString.optional() });
/** Step 409: a refund of part of what was captured; several may follow, up to the captured amount. */
export const refundRequest = z.strictObject({ amount_minor: positiveAmountString });
export const refundView = z.strictObject({
  id: refundId,
  payment_request_id: paymentRequestId,
  currency: currencyCode,
  amount_minor: amountString,
  /** All refunds of this payment request so far, this one included. */
  refunded_minor: amountString,
  captured_minor: amountString,
  created_at: z.string(),
  /** The payment request's mode. */
  livemode: z.boolean(),
});
export type RefundView = z.infer<typeof refundView>;
export const voidRequest = z.strictObject({});

// ---- What the terminal sees and sends (steps 403–404) --------------------------------------

/** Payload of the signed view the authentication server pushes to the terminal. */
export const terminalRequestPayload = z.strictObject({
  rid: paymentRequestId,
  merchant: z.strictObject({ id: merchantId, name: text() }),
  order_id: z.string(),
  currency: currencyCode,
  amount_minor: amountString,
  line_items: z.array(lineItem),
  expires_at: z.string(),
  iat: z.number().int(),
  /**
   * The request's mode (the key that created it): false is a test request, which the wallet marks
   * "TEST"; the device signs it as the approval's `lm`.
   */
  livemode: z.boolean(),
});
export type TerminalRequestPayload = z.infer<typeof terminalRequestPayload>;

/** Payload of the approval the device key signs (dynamic linking to amount, payee and items). */
export const approvalPayload = z.strictObject({
  rid: paymentRequestId,
  mid: merchantId,
  /** The merchant's name the payer was shown: the issuer checks it against its own onboarding record. */
  mnm: text(),
  amt: amountString,
  cur: currencyCode,
  /** sha256 (base64url) of JSON [[description, quantity, unit_price_minor], …] in order. */
  ih: z.string().regex(/^[A-Za-z0-9_-]{43}$/),
  iat: z.number().int(),
  /** The request's expiry: no server acts on the approval after it. */
  exp: z.number().int(),
  nonce: z.string().regex(/^[A-Za-z0-9_-]{22,64}$/),
  /** sha256 (base64url) of the compact PIN block sent with this approval: the device signs which PIN block the issuer may test. */
  pbh: z.string().regex(/^[A-Za-z0-9_-]{43}$/),
  /**
   * The request's mode as the payer was shown it (the view's `livemode`): the issuer declines
   * `livemode_mismatch` when the card is of the other mode.
   */
  lm: z.boolean(),
});
export type ApprovalPayload = z.infer<typeof approvalPayload>;

export const approveRequest = z.strictObject({
  sealed_credential: jose,
  approval: jose,
  /** The PIN, encrypted by the terminal to the issuer's key from the directory, bound to the request id, the approval's nonce and the device key. */
  pin: jose,
});
export type ApproveRequest = z.infer<typeof approveRequest>;

export const pinPlaintext = z.strictObject({ pin: z.string().regex(/^[0-9]{4,12}$/), rid: paymentRequestId, nonce: z.string().regex(/^[A-Za-z0-9_-]{22,64}$/), dkt: z.string().regex(/^[A-Za-z0-9_-]{43}$/) });

export const terminalOutcome = z.strictObject({
  id: paymentRequestId,
  status: paymentRequestStatus,
  decline_code: z.string().nullable(),
  authorization: jose.nullable(),
  /** Approve only: the same credential re-sealed under the current key, when it came under a previous one; the terminal stores it. */
  sealed_credential: jose.optional(),
  /** Approve only, after a wrong PIN (`pending` with `pin_incorrect`): the tries left before a lock; the request can be answered again. */
  pin_tries_left: z.number().int().min(1).max(Math.max(limits.pinAttemptsMax, limits.pinAttemptsPerCredentialMax)).optional(),
});
export type TerminalOutcome = z.infer<typeof terminalOutcome>;

/**
 * A credential as its payer is told it (`GET /v1/terminal/credential`, `kessai wallet status`):
 * `active` with the PIN tries left before a lock, `locked` (too many wrong PINs: the card's lock,
 * `pin_locked`, or this credential's own, `credential_locked`), `blocked` (the issuer blocked the
 * card, `card_blocked`) or `revoked` (`credential_revoked`). The issuer's registry decides all but a
 * revocation the authentication server holds itself. No personal data: the card is not named.
 */
export const credentialState = z.enum(['active', 'locked', 'blocked', 'revoked']);
const credentialStateCode = z.enum(['pin_locked', 'credential_locked', 'card_blocked', 'credential_revoked']);
const credentialStateFields = {
  credential_id: credentialId,
  status: credentialState,
  /** Why it is not active (null when active). */
  code: credentialStateCode.nullable(),
  /** Active only: the wrong PINs still allowed before the card or this credential locks. */
  pin_tries_left: z
    .number()
    .int()
    .min(0)
    .max(Math.max(limits.pinAttemptsMax, limits.pinAttemptsPerCredentialMax, limits.pinFailuresWindowMax))
    .nullable(),
};
export const terminalCredentialStatus = z.strictObject(credentialStateFields);
export type TerminalCredentialStatus = z.infer<typeof terminalCredentialStatus>;

// ---- Authentication server ↔ settlement server (steps 303, 405–407, 409) -------------------

export const issuerMetadata = z.strictObject({
  issuer_id: text(64),
  name: text(),
  conversion_mode: conversionMode,
  cipher2: z.strictObject({ alg: z.enum(['ECDH-ES+A256KW', 'RSA-OAEP-256']), enc: z.literal('A256GCM') }),
  jwks_uri: z.url(),
});
export type IssuerMetadata = z.infer<typeof issuerMetadata>;

export const authorizeRequest = z.strictObject({
  /** The request as the authentication server holds it; the issuer computes the items hash itself. */
  request: z.strictObject({ rid: paymentRequestId, mid: merchantId, amt: amountString, cur: currencyCode, line_items: z.array(lineItem).min(1).max(limits.lineItemsMax) }),
  sealed_credential: jose,
  approval: jose,
  pin: jose,
  /**
   * `automatic`: the issuer posts (captures) the whole amount in the authorization itself; `manual`
   * (the default): it holds it until the capture (step 409).
   */
  capture_method: captureMethod.optional(),
});
export type AuthorizeRequest = z.infer<typeof authorizeRequest>;

export const authorizationDecision = z.enum(['approved', 'declined']);

/** Payload of the settlement server's signed authorization (step 407). */
export const authorizationPayload = z.strictObject({
  iss: z.string(),
  aid: authorizationId,
  rid: paymentRequestId,
  mid: merchantId,
  amt: amountString,
  cur: currencyCode,
  decision: authorizationDecision,
  code: z.enum(declineCodes as [string, ...string[]]).nullable(),
  /** With `pin_incorrect` only: the PIN tries left before the card or this credential locks (the payer may try again). */
  pin_tries_left: z.number().int().min(1).max(Math.max(limits.pinAttemptsMax, limits.pinAttemptsPerCredentialMax)).optional(),
  /**
   * The approval's `lm`, which the issuer checked against the card's own mode: a shop refuses an
   * authorization of another mode than its key's (absent only in decisions signed before modes
   * reached the issuer: refused likewise).
   */
  lm: z.boolean().optional(),
  /** Approved with automatic capture only: the issuer posted the whole amount with this approval. */
  cap: z.literal('automatic').optional(),
  iat: z.number().int(),
});
export type AuthorizationPayload = z.infer<typeof authorizationPayload>;

export const authorizeResponse = z.strictObject({
  authorization: jose,
  /** Pass-through only: the credential re-sealed under the issuer's current cipher 2 key, when it came under a previous one. */
  sealed_credential: jose.optional(),
});

export const settlementCaptureRequest = z.strictObject({ amount_minor: positiveAmountString });
/** Revocation reaching the issuer's registry (the payer's recovery code or an operator, relayed by the authentication server). */
export const issuerRevocationRequest = z.strictObject({ revoked_by: z.enum(['payer', 'operator']) });
export const issuerRevocation = z.strictObject({ credential_id: credentialId, status: z.literal('revoked'), revoked_at: z.string(), revoked_by: z.enum(['payer', 'operator', 'issuer_operator']) });
export type IssuerRevocation = z.infer<typeof issuerRevocation>;
/**
 * The issuer's registry state of a credential (`GET /internal/v1/credentials/{id}`), with the
 * thumbprint of the device key it registered: the authentication server answers `credential_unknown`
 * when its own record names another device key.
 */
export const issuerCredentialStatus = z.strictObject({
  ...credentialStateFields,
  device_jkt: z.string().regex(/^[A-Za-z0-9_-]{43}$/),
});
export type IssuerCredentialStatus = z.infer<typeof issuerCredentialStatus>;
/** A merchant onboarded at an issuer by its operator: only these are paid, under this name. */
export const issuerMerchant = z.strictObject({ merchant_id: merchantId, name: text() });
export const issuerMerchantView = z.strictObject({ merchant_id: merchantId, name: text(), created_at: z.string() });
export const issuerMerchantList = z.strictObject({ items: z.array(issuerMerchantView).max(limits.listPageMax) });
export const settlementCaptureResponse = z.strictObject({ authorization_id: authorizationId, status: z.enum(['captured', 'voided']), captured_minor: amountString });
/** The refund id is chosen (and saved) by the authentication server before it calls: a retry reuses it. */
export const settlementRefundRequest = z.strictObject({ refund_id: refundId, amount_minor: positiveAmountString });
export const settlementRefundResponse = z.strictObject({ authorization_id: authorizationId, refund_id: refundId, amount_minor: amountString, refunded_minor: amountString, captured_minor: amountString });
const approvalNonce = z.string().regex(/^[A-Za-z0-9_-]{22,64}$/);
/**
 * An authorization as its issuer keeps it (the status inquiry, `GET /internal/v1/authorizations/{rid}`):
 * how the authentication server resolves an authorization whose answer it lost (in doubt), and
 * learns that a hold expired or was resolved without it.
 */
export const settlementAuthorizationStatus = z.strictObject({
  authorization_id: authorizationId,
  status: z.enum(['held', 'captured', 'voided', 'expired', 'declined']),
  amount_minor: amountString,
  captured_minor: amountString,
  refunded_minor: amountString,
  /** When the hold is due (held only; null once it is resolved, or for a declined authorization). */
  hold_expires_at: z.string().nullable(),
  /** The signed decision (step 407) exactly as the issuer answered it first. */
  authorization: jose,
});
export type SettlementAuthorizationStatus = z.infer<typeof settlementAuthorizationStatus>;
/** A reversal (`POST /internal/v1/authorizations/{rid}/reversal`): the attempt's approval nonce, so an authorization never seen is refused should it still arrive. */
export const settlementReversalRequest = z.strictObject({ nonce: approvalNonce });
/**
 * What a reversal left: `reversed` — the issuer had no authorization for the request and has spent
 * the nonce, so none will be placed under it; otherwise the authorization's status afterwards
 * (`voided` for a hold it released now or before; `held` for a hold of another attempt, left as it
 * is; `captured`, `expired`, `declined` unchanged).
 */
export const settlementReversal = z.strictObject({
  status: z.enum(['reversed', 'voided', 'held', 'captured', 'expired', 'declined']),
  authorization: settlementAuthorizationStatus.nullable(),
});
export type SettlementReversal = z.infer<typeof settlementReversal>;

// ---- Key rotation (operator, every server) --------------------------------------------------

export const keyStatus = z.enum(['current', 'previous', 'retired']);
/** One key of a server: its name (file stem, e.g. cipher1), kid, use, alg, when it was made, and its status. */
export const keyInfo = z.strictObject({
  key: text(64),
  kid: text(),
  use: z.enum(['sig', 'enc']),
  alg: text(32),
  created: z.string(),
  status: keyStatus,
});
export type KeyInfo = z.infer<typeof keyInfo>;
export const keyList = z.strictObject({ keys: z.array(keyInfo).max(limits.listPageMax) });
export const keyRotateRequest = z.strictObject({ key: text(64) });
export const keyRetireRequest = z.strictObject({ key: text(64), kid: text() });
/** A merchant's new webhook secret, answered once to the operator; the previous ones keep signing until retired. */
export const webhookSecretRotation = z.strictObject({ merchant_id: merchantId, webhook_secret: z.string().regex(/^whsec_[A-Za-z0-9_-]{32}$/), previous_secrets: z.number().int().min(0) });
export type WebhookSecretRotation = z.infer<typeof webhookSecretRotation>;
export const webhookSecretRetirement = z.strictObject({ merchant_id: merchantId, retired: z.number().int().min(0) });
export type WebhookSecretRetirement = z.infer<typeof webhookSecretRetirement>;

// ---- Webhooks (step 407 to the shop) -------------------------------------------------------

export const webhookEvent = z.strictObject({
  id: z.string(),
  type: z.enum(['payment_request.approved', 'payment_request.declined', 'payment_request.cancelled', 'payment_request.captured', 'payment_request.voided', 'payment_request.expired', 'payment_request.refunded']),
  created_at: z.string(),
  /** The payment request's mode: a test event (false) is never one of a live payment. */
  livemode: z.boolean(),
  /** Per payment request, increasing with each of its events: a receiver drops an event whose sequence is not above the last it applied. */
  sequence: z.number().int().positive(),
  data: paymentRequestView,
  /** payment_request.refunded only: the refund that caused the event. */
  refund: refundView.optional(),
});
export type WebhookEvent = z.infer<typeof webhookEvent>;

// ---- Operator: accounts imported at a bank, merchants created at the broker ------------------

/**
 * One account row of `POST /admin/v1/accounts/import`, as the file has it: every field a string,
 * checked row by row by the bank (accounts-import.ts), so that one bad row is reported by its row
 * number instead of refusing the call — and no value is ever echoed. `balance` and `credit_line`
 * are in the currency's units (`"1000"`, `"12.50"`), converted exactly to minor units.
 */
const importField = (max: number) => z.string().max(max).optional();
const majorUnitsDescription =
  'An amount in the currency\'s units as a decimal string ("1000", "12.50"): never a JSON number.';
export const accountImportRow = z.strictObject({
  card_number: importField(32),
  holder_name: importField(limits.holderNameLengthMax * 2),
  expiry: importField(8),
  pin: importField(16),
  balance: importField(32).meta({ description: majorUnitsDescription }),
  currency: importField(8),
  kind: importField(16),
  credit_line: importField(32).meta({ description: majorUnitsDescription }),
  status: importField(16),
  /** `true` for a test card (paid only by test-mode requests); `false` or blank: a live card (the default). */
  test: importField(8),
});
export type AccountImportRow = z.infer<typeof accountImportRow>;
export const accountsImportRequest = z.strictObject({
  /** The file's row number of rows[0] (1: the first row after a CSV header, or a JSON array's first element). */
  first_row: z.number().int().min(1).max(limits.accountsImportFileRowsMax).optional(),
  rows: z.array(accountImportRow).min(1),
});
export const accountImportResult = z.strictObject({
  row: z.number().int().min(1),
  /** created: a new account and card; unchanged: the card exists with this data; conflict: it exists with other data (nothing changed); rejected: the row is invalid. */
  result: z.enum(['created', 'unchanged', 'conflict', 'rejected']),
  code: z.enum(['account_row_invalid', 'account_conflict']).optional(),
  /** Which fields were invalid or differ from the existing card (names, never values). */
  fields: z.array(z.string().max(32)).max(16).optional(),
  /** The last four digits of the card number, when it has at least twelve. */
  card_last4: z.string().regex(/^[0-9]{4}$/).optional(),
  account_id: z.string().regex(/^acct_[0-9a-hjkmnp-tv-z]{26}$/).optional(),
});
export type AccountImportResult = z.infer<typeof accountImportResult>;
export const accountsImportResponse = z.strictObject({
  created: z.number().int().min(0),
  unchanged: z.number().int().min(0),
  conflicts: z.number().int().min(0),
  rejected: z.number().int().min(0),
  results: z.array(accountImportResult).max(limits.accountsImportRowsMax),
});
export type AccountsImportResponse = z.infer<typeof accountsImportResponse>;

/** A merchant the broker's operator creates (`kessai merchants create`): its API key and webhook secret are made by the broker. */
export const brokerMerchantCreate = z.strictObject({
  name: text(),
  webhook_url: z.url({ protocol: /^https$/ }).max(2_048).optional(),
  /** The API key's mode: true makes an sk_live_… key, false or absent an sk_test_… key. */
  livemode: z.boolean().optional(),
});
/** A merchant API key: sk_test_… or sk_live_… (keys made before test/live mode, sk_… alone, are test keys). */
export const merchantApiKey = z.string().regex(/^sk_(?:test_|live_)[A-Za-z0-9_-]{16,120}$/);
/** A key's mode from its prefix: only sk_live_… is live. */
export const apiKeyLivemode = (key: string): boolean => key.startsWith('sk_live_');
/** A key as the operator sees it: never the key, at most its last four characters; a previous key works until `expires_at`. */
const apiKeyView = z.strictObject({
  status: z.enum(['current', 'previous']),
  last4: z.string().max(4).nullable(),
  expires_at: z.string().nullable(),
  livemode: z.boolean(),
});
export const brokerMerchantView = z.strictObject({
  merchant_id: merchantId,
  name: text(),
  webhook_url: z.string().nullable(),
  created_at: z.string(),
  /** Keys that still work (never a key itself): the current one first, then those rolled away from until their expiry. */
  api_keys: z.array(apiKeyView).max(limits.merchantApiKeysMax),
  previous_webhook_secrets: z.number().int().min(0),
});
export const brokerMerchantList = z.strictObject({ items: z.array(brokerMerchantView).max(limits.listPageMax) });
/** The answer that carries a new API key (and, at creation, the webhook secret): shown once, stored only as a hash. */
export const brokerMerchantCreated = z.strictObject({
  merchant: brokerMerchantView,
  api_key: merchantApiKey,
  webhook_secret: z.string().regex(/^whsec_[A-Za-z0-9_-]{32}$/),
});
export const apiKeyRollRequest = z.strictObject({
  /** How long the current key keeps working (default limits.apiKeyOverlapSecondsDefault); 0 retires it at once. */
  overlap_seconds: z.number().int().min(0).max(limits.apiKeyOverlapSecondsMax).optional(),
  /** The new key's mode (default: the current key's). */
  livemode: z.boolean().optional(),
});
/** The new key, shown once; the key it replaced works until `previous_expires_at` (null: retired at once). */
export const apiKeyRolled = z.strictObject({ merchant: brokerMerchantView, api_key: merchantApiKey, previous_expires_at: z.string().nullable() });
export const apiKeysRetired = z.strictObject({ merchant_id: merchantId, retired: z.number().int().min(0) });

// ---- What every server answers alike: problem details, health, public keys --------------------

/**
 * Every 4xx and 5xx answer (RFC 9457, `application/problem+json`): KessaiError.toProblem. Named
 * `Problem` in the OpenAPI documents, where each operation's error statuses refer to it.
 */
export const problemDetails = z
  .object({
    type: z.string().meta({ description: '`urn:kessai:error:<code>`' }),
    title: z.string().meta({ description: "The code's title in the error catalogue (docs/errors.md)." }),
    status: z.number().int().min(400).max(599),
    code: z.enum(errorCodes as [ErrorCode, ...ErrorCode[]]).meta({ description: 'What went wrong (docs/errors.md).' }),
    detail: z.string().optional().meta({ description: 'This occurrence, in words; never personal data.' }),
    errors: z
      .array(z.strictObject({ path: z.string(), message: z.string() }))
      .optional()
      .meta({ description: 'validation_failed: each field that does not match the schema.' }),
    request_id: z.string().optional().meta({ description: "The answer's Request-Id: quote it to its operator." }),
  })
  .meta({ id: 'Problem', description: 'Problem details (RFC 9457): `code` says what went wrong (docs/errors.md).' });

/** `GET /livez`: the process and its event loop run. */
export const livenessAnswer = z.strictObject({ status: z.literal('live') });
/** `GET /readyz`: 200 ready, 503 not_ready (a check failed or timed out) or draining (SIGTERM). */
export const readinessAnswer = z.strictObject({
  status: z.enum(['ready', 'not_ready', 'draining']),
  /** Each readiness check by its fixed name (database, keys, migrations, …). */
  checks: z.record(z.string(), z.enum(['ok', 'failed', 'timeout'])),
});

/**
 * A public key of `/.well-known/jwks.json`: EC (P-256) or RSA public members only:
 * a private member fails the answer.
 */
export const publicJwk = z.strictObject({
  kty: z.enum(['EC', 'RSA']),
  kid: z.string(),
  use: z.enum(['sig', 'enc']),
  alg: z.string(),
  crv: z.string().optional(),
  x: z.string().optional(),
  y: z.string().optional(),
  n: z.string().optional(),
  e: z.string().optional(),
});
export const publicJwkSet = z.strictObject({ keys: z.array(publicJwk) });

/** `GET /pay/:id` (public): what a payment link asks for and how to pay it. */
export const paymentLinkView = z.strictObject({
  id: paymentRequestId,
  /** The merchant's name (its id if it has none). */
  merchant: z.string(),
  currency: currencyCode,
  amount_minor: amountString,
  status: paymentRequestStatus,
  expires_at: z.string(),
  how_to_pay: z.string(),
});
