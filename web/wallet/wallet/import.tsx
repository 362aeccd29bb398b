/** The import screen: a wallet file exported from another browser, opened with its passphrase. */
import { useState, type FormEvent } from 'react';
import { describeError } from '../../shared/api.ts';
import { useI18n } from '../../shared/i18n.tsx';
import { Field } from './field.tsx';
import { unwrapDeviceKey, WrongPassphraseError } from './keys.ts';
import { parseFile, saveWallet, type WalletRecord } from './store.ts';
import { ErrorNotice } from '../../shared/notice.tsx';

export function ImportForm({ onDone }: { onDone: (record: WalletRecord) => void }) {
  const t = useI18n().t.wallet.import;
  const [file, setFile] = useState<File | null>(null);
  const [passphrase, setPassphrase] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function submit(event: FormEvent) {
    event.preventDefault();
    setError(null);
    if (!file) {
      setError(t.chooseFile);
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
      setError(err instanceof WrongPassphraseError ? t.wrongPassphrase : describeError(err));
      setBusy(false);
    }
  }

  return (
    <section className="card" aria-labelledby="import-title">
      <h2 id="import-title">{t.title}</h2>
      <p className="muted">{t.intro}</p>
      {error && <ErrorNotice>{error}</ErrorNotice>}
      <form onSubmit={(event) => void submit(event)} noValidate>
        <Field id="import-file" label={t.file}>
          <input id="import-file" type="file" accept=".json,application/json" onChange={(event) => setFile(event.target.files?.[0] ?? null)} />
        </Field>
        <Field id="import-passphrase" label={t.passphrase}>
          <input id="import-passphrase" type="password" value={passphrase} onChange={(event) => setPassphrase(event.target.value)} autoComplete="current-password" />
        </Field>
        <button type="submit" disabled={busy}>
          {busy ? t.busy : t.submit}
        </button>
      </form>
    </section>
  );
}
