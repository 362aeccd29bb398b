/**
 * The browser wallet: a terminal (role 10) in the browser. Enrollment with inline checks (Luhn,
 * expiry), the device key in IndexedDB (keys.ts), export to a file and import from one (the
 * removable storage), payment requests arriving live, the confirmation screen (verified merchant,
 * every item, quantity, total), PIN entry, decline, and the history of payments.
 */
import { useCallback, useEffect, useRef, useState, type FormEvent } from 'react';
import '../../shared/ui.css';
import { ApiError, describeError } from '../../shared/api.ts';
import { money } from '../../shared/format.ts';
import { LineItems } from '../../shared/line-items.tsx';
import { mount } from '../../shared/mount.tsx';
import { isExpired, isValidCardNumber, normalizeCardNumber } from '../../../packages/protocol/src/card.ts';
import { safeDisplay } from '../../../packages/protocol/src/display.ts';
import { lineItemsTotal } from '../../../packages/protocol/src/money.ts';
import type { TerminalRequestPayload } from '../../../packages/protocol/src/messages.ts';
import { createDeviceKey, passphraseLengthMin, unwrapDeviceKey, WrongPassphraseError } from './keys.ts';
import { addHistory, loadWallet, parseFile, removeWallet, saveWallet, toFile, type HistoryEntry, type WalletRecord } from './store.ts';
import { enroll, Terminal, walletHostConfig, type Outcome } from './terminal.ts';

const declineReasons: Record<string, string> = {
  pin_incorrect: 'the PIN is not correct',
  pin_locked: 'the card is locked after too many wrong PINs',
  insufficient_funds: 'not enough funds',
  enrollment_refused: 'your bank refused the card: check the name, expiry and PIN',
  credential_limit_reached: 'this card has the most devices your bank allows: revoke one first',
  card_expired: 'the card has expired',
  payer_declined: 'you declined it',
};

function reason(code: string | null): string {
  return code ? (declineReasons[code] ?? code.replace(/_/g, ' ')) : '';
}

function Field(props: { id: string; label: string; hint?: string; error?: string | null; children: React.ReactNode }) {
  return (
    <div className="field">
      <label htmlFor={props.id}>{props.label}</label>
      {props.children}
      {props.hint && (
        <p id={`${props.id}-hint`} className="hint">
          {props.hint}
        </p>
      )}
      {props.error && (
        <p id={`${props.id}-error`} className="error">
          {props.error}
        </p>
      )}
    </div>
  );
}

function describedBy(id: string, hint: boolean, error: string | null | undefined): string | undefined {
  const ids = [hint ? `${id}-hint` : '', error ? `${id}-error` : ''].filter(Boolean).join(' ');
  return ids || undefined;
}

// ---- Enrollment and import ---------------------------------------------------------------------

interface EnrollErrors {
  holder?: string;
  card?: string;
  expiry?: string;
  pin?: string;
  passphrase?: string;
  confirm?: string;
}

function validateEnrollment(values: { holder: string; card: string; expiry: string; pin: string; passphrase: string; confirm: string }): EnrollErrors {
  const errors: EnrollErrors = {};
  if (!values.holder.trim()) errors.holder = 'Enter the name as printed on the card.';
  else if (values.holder.trim().length > 64) errors.holder = 'The name is at most 64 characters.';
  const digits = normalizeCardNumber(values.card);
  if (!digits) errors.card = 'Enter the card number.';
  else if (!/^[0-9]+$/.test(digits)) errors.card = 'A card number has digits only (spaces are fine).';
  else if (digits.length < 12 || digits.length > 19) errors.card = 'A card number has 12 to 19 digits.';
  else if (!isValidCardNumber(digits)) errors.card = 'This card number has a typing error (its check digit does not match).';
  if (!values.expiry) errors.expiry = 'Enter the expiry date as MM/YY.';
  else if (!/^(0[1-9]|1[0-2])\/[0-9]{2}$/.test(values.expiry)) errors.expiry = 'Write the expiry as MM/YY, for example 12/34.';
  else if (isExpired(values.expiry, new Date())) errors.expiry = 'This card has expired.';
  if (!/^[0-9]{4,12}$/.test(values.pin)) errors.pin = 'Enter the card’s PIN: 4 to 12 digits.';
  if (values.passphrase.length < passphraseLengthMin) errors.passphrase = `Choose a passphrase of at least ${passphraseLengthMin} characters.`;
  if (values.confirm !== values.passphrase) errors.confirm = 'The two passphrases differ.';
  return errors;
}

function EnrollForm({ onDone }: { onDone: (record: WalletRecord, recoveryCode: string) => void }) {
  const [values, setValues] = useState({ holder: '', card: '', expiry: '', pin: '', passphrase: '', confirm: '' });
  const [touched, setTouched] = useState<Record<string, boolean>>({});
  const [submitted, setSubmitted] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [focusRequest, setFocusRequest] = useState<{ field: string } | null>(null);
  const errors = validateEnrollment(values);
  // After a refused submit, the first field with an error takes the focus (once it is rendered as invalid).
  useEffect(() => {
    if (focusRequest) document.getElementById(`enroll-${focusRequest.field}`)?.focus();
  }, [focusRequest]);
  const shown = (key: keyof EnrollErrors) => (submitted || touched[key] ? errors[key] : undefined);
  const set = (key: keyof typeof values) => (event: React.ChangeEvent<HTMLInputElement>) => setValues((old) => ({ ...old, [key]: event.target.value }));
  const blur = (key: string) => () => setTouched((old) => ({ ...old, [key]: true }));

  async function submit(event: FormEvent) {
    event.preventDefault();
    setSubmitted(true);
    setError(null);
    const first = (['holder', 'card', 'expiry', 'pin', 'passphrase', 'confirm'] as const).find((key) => errors[key]);
    if (first) {
      setFocusRequest({ field: first });
      return;
    }
    setBusy(true);
    try {
      const key = await createDeviceKey(values.passphrase);
      const answer = await enroll({ holderName: values.holder.trim(), cardNumber: normalizeCardNumber(values.card), expiry: values.expiry, pin: values.pin, deviceJwk: key.publicJwk });
      const record: WalletRecord = {
        version: 2,
        auth_base_url: answer.auth_base_url,
        credential_id: answer.credential_id,
        sealed_credential: answer.sealed_credential,
        issuer: answer.issuer,
        auth_jwks_uri: answer.auth_jwks_uri,
        device_public_jwk: key.publicJwk,
        wrapped_device_key: key.wrapped,
        device_key: key.privateKey,
        created_at: new Date().toISOString(),
        imported: false,
        history: [],
      };
      await saveWallet(record);
      // The card data leaves the form state: only the sealed credential remains.
      setValues({ holder: '', card: '', expiry: '', pin: '', passphrase: '', confirm: '' });
      onDone(record, answer.recovery_code);
    } catch (err) {
      setError(err instanceof ApiError ? `Enrollment refused: ${describeError(err)}` : `Enrollment failed: ${describeError(err)}`);
      setBusy(false);
    }
  }

  return (
    <section className="card" aria-labelledby="enroll-title">
      <h2 id="enroll-title">Enroll a card</h2>
      <p className="muted">Your bank checks the card and the PIN and registers this browser. The PIN is encrypted here for your bank alone; the card details are too when your bank asks for it, otherwise they pass the authentication server once, to be sealed. This browser keeps only the sealed credential.</p>
      {error && (
        <div className="notice bad" role="alert">
          {error}
        </div>
      )}
      <form onSubmit={(event) => void submit(event)} noValidate aria-describedby="enroll-title">
        <Field id="enroll-holder" label="Name on the card" error={shown('holder')}>
          <input id="enroll-holder" value={values.holder} onChange={set('holder')} onBlur={blur('holder')} autoComplete="cc-name" aria-invalid={shown('holder') ? true : undefined} aria-describedby={describedBy('enroll-holder', false, shown('holder'))} />
        </Field>
        <Field id="enroll-card" label="Card number" hint="12 to 19 digits; spaces are fine." error={shown('card')}>
          <input id="enroll-card" value={values.card} onChange={set('card')} onBlur={blur('card')} inputMode="numeric" autoComplete="cc-number" aria-invalid={shown('card') ? true : undefined} aria-describedby={describedBy('enroll-card', true, shown('card'))} />
        </Field>
        <Field id="enroll-expiry" label="Expiry (MM/YY)" error={shown('expiry')}>
          <input id="enroll-expiry" value={values.expiry} onChange={set('expiry')} onBlur={blur('expiry')} inputMode="numeric" autoComplete="cc-exp" placeholder="MM/YY" style={{ maxWidth: '8rem' }} aria-invalid={shown('expiry') ? true : undefined} aria-describedby={describedBy('enroll-expiry', false, shown('expiry'))} />
        </Field>
        <Field id="enroll-pin" label="PIN" hint="Your bank checks it to confirm the card is yours. It is encrypted for your bank on this page; the authentication server cannot read it." error={shown('pin')}>
          <input id="enroll-pin" type="password" className="pin" value={values.pin} onChange={set('pin')} onBlur={blur('pin')} inputMode="numeric" autoComplete="off" maxLength={12} style={{ maxWidth: '10rem' }} aria-invalid={shown('pin') ? true : undefined} aria-describedby={describedBy('enroll-pin', true, shown('pin'))} />
        </Field>
        <Field id="enroll-passphrase" label="Passphrase for wallet files" hint={`At least ${passphraseLengthMin} characters. It protects the device key in an exported wallet file; you need it to import the file elsewhere.`} error={shown('passphrase')}>
          <input id="enroll-passphrase" type="password" value={values.passphrase} onChange={set('passphrase')} onBlur={blur('passphrase')} autoComplete="new-password" aria-invalid={shown('passphrase') ? true : undefined} aria-describedby={describedBy('enroll-passphrase', true, shown('passphrase'))} />
        </Field>
        <Field id="enroll-confirm" label="Passphrase again" error={shown('confirm')}>
          <input id="enroll-confirm" type="password" value={values.confirm} onChange={set('confirm')} onBlur={blur('confirm')} autoComplete="new-password" aria-invalid={shown('confirm') ? true : undefined} aria-describedby={describedBy('enroll-confirm', false, shown('confirm'))} />
        </Field>
        {/* No blur on press: an error shown by the blur would move the button away from under the pointer. */}
        <button type="submit" disabled={busy} onMouseDown={(event) => event.preventDefault()}>
          {busy ? 'Enrolling…' : 'Enroll'}
        </button>
      </form>
    </section>
  );
}

function ImportForm({ onDone }: { onDone: (record: WalletRecord) => void }) {
  const [file, setFile] = useState<File | null>(null);
  const [passphrase, setPassphrase] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function submit(event: FormEvent) {
    event.preventDefault();
    setError(null);
    if (!file) {
      setError('Choose a wallet file.');
      return;
    }
    setBusy(true);
    try {
      const parsed = parseFile(await file.text());
      const key = await unwrapDeviceKey(parsed.wrapped_device_key, passphrase);
      if (key.publicJwk.x !== parsed.device_public_jwk.x || key.publicJwk.y !== parsed.device_public_jwk.y) throw new Error('the key in the wallet file does not match its public key');
      const record: WalletRecord = {
        version: 2,
        auth_base_url: parsed.auth_base_url,
        credential_id: parsed.credential_id,
        sealed_credential: parsed.sealed_credential,
        issuer: parsed.issuer,
        auth_jwks_uri: parsed.auth_jwks_uri,
        device_public_jwk: parsed.device_public_jwk,
        wrapped_device_key: parsed.wrapped_device_key,
        device_key: key.privateKey,
        created_at: new Date().toISOString(),
        imported: true,
        history: [],
      };
      await saveWallet(record);
      onDone(record);
    } catch (err) {
      setError(err instanceof WrongPassphraseError ? 'The passphrase does not open this wallet file.' : describeError(err));
      setBusy(false);
    }
  }

  return (
    <section className="card" aria-labelledby="import-title">
      <h2 id="import-title">Import a wallet file</h2>
      <p className="muted">A wallet exported from another browser carries its credential here; you need the passphrase chosen at enrollment.</p>
      {error && (
        <div className="notice bad" role="alert">
          {error}
        </div>
      )}
      <form onSubmit={(event) => void submit(event)} noValidate>
        <Field id="import-file" label="Wallet file">
          <input id="import-file" type="file" accept=".json,application/json" onChange={(event) => setFile(event.target.files?.[0] ?? null)} />
        </Field>
        <Field id="import-passphrase" label="Passphrase">
          <input id="import-passphrase" type="password" value={passphrase} onChange={(event) => setPassphrase(event.target.value)} autoComplete="current-password" />
        </Field>
        <button type="submit" disabled={busy}>
          {busy ? 'Importing…' : 'Import'}
        </button>
      </form>
    </section>
  );
}

// ---- Confirmation ------------------------------------------------------------------------------

function Confirm({ view, terminal, onFinished, onBack }: { view: TerminalRequestPayload; terminal: Terminal; onFinished: (entry: HistoryEntry) => void; onBack: () => void }) {
  const [pin, setPin] = useState('');
  const [pinError, setPinError] = useState<string | null>(null);
  const [busy, setBusy] = useState<null | 'approve' | 'decline'>(null);
  const [error, setError] = useState<string | null>(null);
  const pinInput = useRef<HTMLInputElement>(null);
  const heading = useRef<HTMLHeadingElement>(null);
  const totalsAgree = lineItemsTotal(view.line_items) === BigInt(view.amount_minor);
  useEffect(() => heading.current?.focus(), []);

  function entry(outcome: Outcome): HistoryEntry {
    return {
      rid: view.rid,
      order_id: view.order_id,
      merchant: view.merchant.name,
      currency: view.currency,
      amount_minor: view.amount_minor,
      items: view.line_items.reduce((sum, item) => sum + item.quantity, 0),
      status: outcome.status,
      decline_code: outcome.decline_code,
      at: new Date().toISOString(),
    };
  }

  async function approve(event: FormEvent) {
    event.preventDefault();
    if (!/^[0-9]{4,12}$/.test(pin)) {
      setPinError('The PIN is 4 to 12 digits.');
      pinInput.current?.focus();
      return;
    }
    setPinError(null);
    setError(null);
    setBusy('approve');
    try {
      const outcome = await terminal.approve(view, pin);
      setPin('');
      if (outcome.status === 'pending' && outcome.pin_tries_left !== undefined) {
        // A wrong PIN with tries left: the request is still payable; ask again.
        setPinError(`The PIN is not correct. ${outcome.pin_tries_left} ${outcome.pin_tries_left === 1 ? 'try' : 'tries'} left before the card locks.`);
        setBusy(null);
        pinInput.current?.focus();
        return;
      }
      onFinished(entry(outcome));
    } catch (err) {
      setPin('');
      setError(describeError(err));
      setBusy(null);
    }
  }

  async function decline() {
    setBusy('decline');
    setError(null);
    try {
      const outcome = await terminal.decline(view);
      onFinished(entry({ ...outcome, decline_code: outcome.decline_code ?? 'payer_declined' }));
    } catch (err) {
      setError(describeError(err));
      setBusy(null);
    }
  }

  return (
    <section className="card" aria-labelledby="confirm-title">
      <h2 id="confirm-title" ref={heading} tabIndex={-1}>
        Confirm the payment
      </h2>
      <p>
        <span className="muted">Merchant</span>
        <br />
        <strong style={{ fontSize: '1.25rem' }} data-testid="merchant-name">
          {safeDisplay(view.merchant.name)}
        </strong>{' '}
        <span className="status ok">verified</span>
      </p>
      <p className="muted">This request is signed by the authentication server; the signature was checked before it was shown. Order {safeDisplay(view.order_id)}.</p>
      <LineItems caption="Items to pay for" currency={view.currency} items={view.line_items} totalMinor={view.amount_minor} totalTestId="confirm-total" />
      <p className="muted">Valid until {new Date(view.expires_at).toLocaleString()}.</p>
      {!totalsAgree && (
        <div className="notice bad" role="alert">
          The items do not add up to the total: do not approve this request.
        </div>
      )}
      {error && (
        <div className="notice bad" role="alert">
          {error}
        </div>
      )}
      <form onSubmit={(event) => void approve(event)} noValidate>
        <Field id="pin" label="PIN" hint="Your card's PIN (4 to 12 digits). Only your bank can read it." error={pinError}>
          <input
            id="pin"
            ref={pinInput}
            className="pin"
            type="password"
            inputMode="numeric"
            autoComplete="off"
            maxLength={12}
            value={pin}
            onChange={(event) => setPin(event.target.value.replace(/[^0-9]/g, ''))}
            aria-invalid={pinError ? true : undefined}
            aria-describedby={describedBy('pin', true, pinError)}
          />
        </Field>
        <div className="row">
          <button type="submit" disabled={busy !== null || !totalsAgree}>
            {busy === 'approve' ? 'Paying…' : `Pay ${money(view.amount_minor, view.currency)}`}
          </button>
          <button type="button" className="danger" disabled={busy !== null} onClick={() => void decline()}>
            {busy === 'decline' ? 'Declining…' : 'Decline'}
          </button>
          <button type="button" className="secondary" disabled={busy !== null} onClick={onBack}>
            Not now
          </button>
        </div>
      </form>
    </section>
  );
}

// ---- The enrolled wallet -----------------------------------------------------------------------

function statusTone(status: string): 'ok' | 'bad' | 'wait' {
  if (status === 'approved' || status === 'captured') return 'ok';
  if (status === 'pending' || status === 'authorizing') return 'wait';
  return 'bad';
}

function Wallet({ record, onRecord, onRemoved }: { record: WalletRecord; onRecord: (record: WalletRecord) => void; onRemoved: () => void }) {
  const terminal = useRef(new Terminal(record, onRecord)).current;
  const [hostAuthUrl, setHostAuthUrl] = useState<string | null>(null);
  useEffect(() => {
    walletHostConfig().then((config) => setHostAuthUrl(config.auth_base_url), () => undefined);
  }, []);
  const [incoming, setIncoming] = useState<TerminalRequestPayload[]>([]);
  const [selected, setSelected] = useState<TerminalRequestPayload | null>(null);
  const [stream, setStream] = useState<{ state: 'connecting' | 'open' | 'retrying'; detail?: string }>({ state: 'connecting' });
  const [result, setResult] = useState<HistoryEntry | null>(null);
  const [link, setLink] = useState('');
  const [linkError, setLinkError] = useState<string | null>(null);
  const [copied, setCopied] = useState(false);
  const answered = useRef(new Set(record.history.map((entry) => entry.rid)));

  const offer = useCallback((view: TerminalRequestPayload) => {
    if (answered.current.has(view.rid)) return;
    setIncoming((old) => (old.some((known) => known.rid === view.rid) ? old : [...old, view]));
  }, []);

  useEffect(() => {
    const controller = new AbortController();
    void terminal.listen(controller.signal, offer, (state, detail) => setStream({ state, ...(detail ? { detail } : {}) }));
    return () => controller.abort();
  }, [terminal, offer]);

  // A payment link opened in the browser (/pay/pr_… redirects here with ?pay=pr_…).
  useEffect(() => {
    const pay = new URLSearchParams(location.search).get('pay');
    if (!pay) return;
    history.replaceState(null, '', location.pathname);
    terminal.fetch(pay).then(
      (view) => {
        offer(view);
        setSelected(view);
      },
      (err: unknown) => setLinkError(`The payment link cannot be opened: ${describeError(err)}`),
    );
  }, [terminal, offer]);

  async function openLink(event: FormEvent) {
    event.preventDefault();
    setLinkError(null);
    try {
      const view = await terminal.fetch(link);
      offer(view);
      setSelected(view);
      setLink('');
    } catch (err) {
      setLinkError(describeError(err));
    }
  }

  async function finished(entry: HistoryEntry) {
    answered.current.add(entry.rid);
    setIncoming((old) => old.filter((view) => view.rid !== entry.rid));
    setSelected(null);
    setResult(entry);
    const updated = await addHistory(entry);
    if (updated) onRecord(updated);
  }

  function exportFile() {
    const blob = new Blob([JSON.stringify(toFile(record), null, 2)], { type: 'application/json' });
    const url = URL.createObjectURL(blob);
    const anchor = document.createElement('a');
    anchor.href = url;
    anchor.download = `kessai-wallet-${record.credential_id}.json`;
    document.body.append(anchor);
    anchor.click();
    anchor.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  }

  async function remove() {
    if (!confirm('Remove this wallet from this browser? Without an exported wallet file it cannot be used again.')) return;
    await removeWallet();
    onRemoved();
  }

  async function copyHandle() {
    try {
      await navigator.clipboard.writeText(record.credential_id);
      setCopied(true);
    } catch {
      setCopied(false);
    }
  }

  if (selected) return <Confirm view={selected} terminal={terminal} onFinished={(entry) => void finished(entry)} onBack={() => setSelected(null)} />;

  const streamText = stream.state === 'open' ? 'Connected: payment requests appear here as they arrive.' : stream.state === 'connecting' ? 'Connecting…' : `Reconnecting${stream.detail ? ` (${stream.detail})` : ''}…`;
  return (
    <>
      {result && (
        <div className={`notice ${statusTone(result.status) === 'ok' ? 'ok' : 'bad'}`} role="status" data-testid="payment-result" data-status={result.status}>
          {result.status === 'approved' || result.status === 'captured'
            ? `Paid ${money(result.amount_minor, result.currency)} to ${safeDisplay(result.merchant)}.`
            : result.status === 'authorizing'
              ? `Not known yet: the bank's answer for ${money(result.amount_minor, result.currency)} to ${safeDisplay(result.merchant)} was lost; it is being checked. Do not pay again: the history shows the outcome.`
              : `Not paid: ${reason(result.decline_code) || result.status} (${safeDisplay(result.merchant)}, ${money(result.amount_minor, result.currency)}).`}
        </div>
      )}
      <div className="layout">
        <div>
          <section className="card" aria-labelledby="incoming-title">
            <h2 id="incoming-title">Payment requests</h2>
            <p className="muted" role="status" data-testid="stream-state" data-state={stream.state}>
              {streamText}
            </p>
            {incoming.length === 0 ? (
              <p>No payment request is waiting.</p>
            ) : (
              <ul style={{ listStyle: 'none', padding: 0, margin: 0 }} aria-live="polite">
                {incoming.map((view) => (
                  <li key={view.rid} className="row" style={{ justifyContent: 'space-between', borderBottom: '1px solid var(--line)', padding: '.5rem 0' }}>
                    <span>
                      <strong>{safeDisplay(view.merchant.name)}</strong> — {money(view.amount_minor, view.currency)}, {view.line_items.length} {view.line_items.length === 1 ? 'item' : 'items'}
                    </span>
                    <button type="button" onClick={() => setSelected(view)} data-rid={view.rid}>
                      Review and pay
                    </button>
                  </li>
                ))}
              </ul>
            )}
            <form onSubmit={(event) => void openLink(event)} noValidate style={{ marginTop: '1rem' }}>
              <Field id="link" label="Open a payment link" hint="Paste the link the shop shows (…/pay/pr_…)." error={linkError}>
                <div className="row" style={{ flexWrap: 'nowrap' }}>
                  <input id="link" value={link} onChange={(event) => setLink(event.target.value)} autoComplete="off" spellCheck={false} aria-describedby={describedBy('link', true, linkError)} />
                  <button type="submit" className="secondary">
                    Open
                  </button>
                </div>
              </Field>
            </form>
          </section>
          <section className="card" aria-labelledby="history-title">
            <h2 id="history-title">History</h2>
            {record.history.length === 0 ? (
              <p className="muted">No payments yet.</p>
            ) : (
              <table data-testid="history">
                <caption className="sr-only">Payments answered from this wallet, newest first</caption>
                <thead>
                  <tr>
                    <th scope="col">When</th>
                    <th scope="col">Merchant</th>
                    <th scope="col" className="num">Amount</th>
                    <th scope="col">Result</th>
                  </tr>
                </thead>
                <tbody>
                  {record.history.map((entry) => (
                    <tr key={entry.rid}>
                      <td>{new Date(entry.at).toLocaleString()}</td>
                      <td>{safeDisplay(entry.merchant)}</td>
                      <td className="num">{money(entry.amount_minor, entry.currency)}</td>
                      <td>
                        <span className={`status ${statusTone(entry.status)}`}>{entry.status}</span> {entry.decline_code && <span className="muted">{reason(entry.decline_code)}</span>}
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )}
          </section>
        </div>
        <aside>
          <section className="card" aria-labelledby="wallet-title">
            <h2 id="wallet-title">This wallet</h2>
            <p>
              <span className="muted">Wallet handle (give it to a shop to receive its payment requests)</span>
              <br />
              <span className="mono" data-testid="credential-id">
                {record.credential_id}
              </span>
            </p>
            <p className="row">
              <button type="button" className="secondary" onClick={() => void copyHandle()}>
                Copy handle
              </button>
              <span role="status">{copied ? 'Copied.' : ''}</span>
            </p>
            <p>
              <span className="muted">Bank</span>
              <br />
              {record.issuer.name}
            </p>
            <p className="muted">{record.imported ? 'Imported from a wallet file.' : 'Enrolled in this browser.'} The device key cannot be read out of this browser; a wallet file carries it encrypted under your passphrase.</p>
            {hostAuthUrl !== null && new URL(record.auth_base_url).origin !== new URL(hostAuthUrl).origin && (
              <div className="notice bad" role="alert">
                This wallet was enrolled with {record.auth_base_url}, not {hostAuthUrl}.
              </div>
            )}
            <div className="row">
              <button type="button" onClick={exportFile}>
                Export to a file
              </button>
              <button type="button" className="danger" onClick={() => void remove()}>
                Remove
              </button>
            </div>
          </section>
        </aside>
      </div>
    </>
  );
}

function RecoveryCode({ code, onDone }: { code: string; onDone: () => void }) {
  const heading = useRef<HTMLHeadingElement>(null);
  useEffect(() => heading.current?.focus(), []);
  return (
    <section className="card" aria-labelledby="recovery-title">
      <h2 id="recovery-title" ref={heading} tabIndex={-1}>
        Enrolled. Write down your recovery code
      </h2>
      <p>If you lose this browser and every wallet file, this code revokes the card's credential from any device. It is shown only now and is not stored here.</p>
      <p className="mono" style={{ fontSize: '1.3rem' }} data-testid="recovery-code">
        {code}
      </p>
      <button type="button" onClick={onDone}>
        I have written it down
      </button>
    </section>
  );
}

function App() {
  const [record, setRecord] = useState<WalletRecord | null | undefined>(undefined);
  const [recovery, setRecovery] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    loadWallet().then(
      (found) => setRecord(found ?? null),
      (err: unknown) => setError(`This browser's storage cannot be read: ${describeError(err)}`),
    );
  }, []);

  return (
    <>
      <header className="bar">
        <h1>Kessai wallet</h1>
        <span className="sub">your terminal in the browser</span>
      </header>
      <main>
        {error && (
          <div className="notice bad" role="alert">
            {error}
          </div>
        )}
        {record === undefined && !error && <p>Opening the wallet…</p>}
        {record === null && new URLSearchParams(location.search).has('pay') && (
          <div className="notice" role="status">
            A payment request is waiting for you: enroll a card or import your wallet file, and it opens next.
          </div>
        )}
        {record === null && (
          <div className="layout halves">
            <EnrollForm
              onDone={(created, code) => {
                setRecovery(code);
                setRecord(created);
              }}
            />
            <ImportForm onDone={setRecord} />
          </div>
        )}
        {record && recovery && <RecoveryCode code={recovery} onDone={() => setRecovery(null)} />}
        {record && !recovery && <Wallet key={record.credential_id} record={record} onRecord={setRecord} onRemoved={() => setRecord(null)} />}
      </main>
    </>
  );
}

mount(<App />);
