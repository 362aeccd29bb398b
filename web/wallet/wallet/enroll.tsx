/** The enrollment screen: a card registered with its bank, with inline checks (Luhn, expiry). */
import { useEffect, useState, type FormEvent } from 'react';
import { ApiError, describeError } from '../../shared/api.ts';
import { useI18n } from '../../shared/i18n.tsx';
import type { Messages } from '../../shared/messages/en.ts';
import { isExpired, isValidCardNumber, normalizeCardNumber } from '../../../packages/protocol/src/card.ts';
import { describedBy, Field } from './field.tsx';
import { createDeviceKey, passphraseLengthMin } from './keys.ts';
import { saveWallet, type WalletRecord } from './store.ts';
import { enroll } from './terminal.ts';
import { ErrorNotice } from '../../shared/notice.tsx';

interface EnrollErrors {
  holder?: string;
  card?: string;
  expiry?: string;
  pin?: string;
  passphrase?: string;
  confirm?: string;
}

type EnrollValues = { holder: string; card: string; expiry: string; pin: string; passphrase: string; confirm: string };
type ErrorTexts = Messages['wallet']['enroll']['errors'];

export function validateEnrollment(values: EnrollValues, m: ErrorTexts): EnrollErrors {
  const errors: EnrollErrors = {};
  if (!values.holder.trim()) errors.holder = m.holderMissing;
  else if (values.holder.trim().length > 64) errors.holder = m.holderLong;
  const digits = normalizeCardNumber(values.card);
  if (!digits) errors.card = m.cardMissing;
  else if (!/^[0-9]+$/.test(digits)) errors.card = m.cardDigits;
  else if (digits.length < 12 || digits.length > 19) errors.card = m.cardLength;
  else if (!isValidCardNumber(digits)) errors.card = m.cardLuhn;
  if (!values.expiry) errors.expiry = m.expiryMissing;
  else if (!/^(0[1-9]|1[0-2])\/[0-9]{2}$/.test(values.expiry)) errors.expiry = m.expiryFormat;
  else if (isExpired(values.expiry, new Date())) errors.expiry = m.expired;
  if (!/^[0-9]{4,12}$/.test(values.pin)) errors.pin = m.pin;
  if (values.passphrase.length < passphraseLengthMin) errors.passphrase = m.passphrase(passphraseLengthMin);
  if (values.confirm !== values.passphrase) errors.confirm = m.confirm;
  return errors;
}

const noValues: EnrollValues = { holder: '', card: '', expiry: '', pin: '', passphrase: '', confirm: '' };

/** A device key under the passphrase, the enrollment at the authentication server, the record saved. */
async function enrollAndSave(values: EnrollValues): Promise<{ record: WalletRecord; recoveryCode: string }> {
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
  return { record, recoveryCode: answer.recovery_code };
}

export function EnrollForm({ onDone }: { onDone: (record: WalletRecord, recoveryCode: string) => void }) {
  const [values, setValues] = useState<EnrollValues>(noValues);
  const [touched, setTouched] = useState<Record<string, boolean>>({});
  const [submitted, setSubmitted] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [focusRequest, setFocusRequest] = useState<{ field: string } | null>(null);
  const { t: all } = useI18n();
  const t = all.wallet.enroll;
  const errors = validateEnrollment(values, t.errors);
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
      const { record, recoveryCode } = await enrollAndSave(values);
      setValues(noValues); // the card data leaves the form state: only the sealed credential remains
      onDone(record, recoveryCode);
    } catch (err) {
      setError(err instanceof ApiError ? t.refused(describeError(err)) : t.failed(describeError(err)));
      setBusy(false);
    }
  }

  return (
    <section className="card" aria-labelledby="enroll-title">
      <h2 id="enroll-title">{t.title}</h2>
      <p className="muted">{t.intro}</p>
      {error && <ErrorNotice>{error}</ErrorNotice>}
      <form onSubmit={(event) => void submit(event)} noValidate aria-describedby="enroll-title">
        <Field id="enroll-holder" label={t.holder} error={shown('holder')}>
          <input id="enroll-holder" value={values.holder} onChange={set('holder')} onBlur={blur('holder')} autoComplete="cc-name" aria-invalid={shown('holder') ? true : undefined} aria-describedby={describedBy('enroll-holder', false, shown('holder'))} />
        </Field>
        <Field id="enroll-card" label={t.card} hint={t.cardHint} error={shown('card')}>
          <input id="enroll-card" value={values.card} onChange={set('card')} onBlur={blur('card')} inputMode="numeric" autoComplete="cc-number" aria-invalid={shown('card') ? true : undefined} aria-describedby={describedBy('enroll-card', true, shown('card'))} />
        </Field>
        <Field id="enroll-expiry" label={t.expiry} error={shown('expiry')}>
          <input id="enroll-expiry" value={values.expiry} onChange={set('expiry')} onBlur={blur('expiry')} inputMode="numeric" autoComplete="cc-exp" placeholder="MM/YY" style={{ maxWidth: '8rem' }} aria-invalid={shown('expiry') ? true : undefined} aria-describedby={describedBy('enroll-expiry', false, shown('expiry'))} />
        </Field>
        <Field id="enroll-pin" label={t.pin} hint={t.pinHint} error={shown('pin')}>
          <input id="enroll-pin" type="password" className="pin" value={values.pin} onChange={set('pin')} onBlur={blur('pin')} inputMode="numeric" autoComplete="off" maxLength={12} style={{ maxWidth: '10rem' }} aria-invalid={shown('pin') ? true : undefined} aria-describedby={describedBy('enroll-pin', true, shown('pin'))} />
        </Field>
        <Field id="enroll-passphrase" label={t.passphrase} hint={t.passphraseHint(passphraseLengthMin)} error={shown('passphrase')}>
          <input id="enroll-passphrase" type="password" value={values.passphrase} onChange={set('passphrase')} onBlur={blur('passphrase')} autoComplete="new-password" aria-invalid={shown('passphrase') ? true : undefined} aria-describedby={describedBy('enroll-passphrase', true, shown('passphrase'))} />
        </Field>
        <Field id="enroll-confirm" label={t.confirm} error={shown('confirm')}>
          <input id="enroll-confirm" type="password" value={values.confirm} onChange={set('confirm')} onBlur={blur('confirm')} autoComplete="new-password" aria-invalid={shown('confirm') ? true : undefined} aria-describedby={describedBy('enroll-confirm', false, shown('confirm'))} />
        </Field>
        {/* No blur on press: an error shown by the blur would move the button away from under the pointer. */}
        <button type="submit" disabled={busy} onMouseDown={(event) => event.preventDefault()}>
          {busy ? t.busy : t.submit}
        </button>
      </form>
    </section>
  );
}
