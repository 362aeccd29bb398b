/**
 * The browser wallet: a terminal (role 10) in the browser. One file per screen: enrollment with
 * inline checks (enroll.tsx), import from a wallet file (import.tsx), the recovery code
 * (recovery.tsx), the wallet with live payment requests, history and export (home.tsx), and the
 * confirmation screen with PIN entry and decline (confirm.tsx). The device key lives in IndexedDB
 * (keys.ts, store.ts); terminal.ts speaks to the authentication server.
 */
import { useEffect, useState } from 'react';
import '../../shared/ui.css';
import { describeError } from '../../shared/api.ts';
import { LanguageSwitch, useI18n, useTitle } from '../../shared/i18n.tsx';
import { mount } from '../../shared/mount.tsx';
import { EnrollForm } from './enroll.tsx';
import { Wallet } from './home.tsx';
import { ImportForm } from './import.tsx';
import { RecoveryCode } from './recovery.tsx';
import { loadWallet, type WalletRecord } from './store.ts';
import { ErrorNotice } from '../../shared/notice.tsx';

function App() {
  const { t } = useI18n();
  useTitle(t.wallet.title);
  const [record, setRecord] = useState<WalletRecord | null | undefined>(undefined);
  const [recovery, setRecovery] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    loadWallet().then(
      (found) => setRecord(found ?? null),
      (err: unknown) => setError(t.wallet.storageFailed(describeError(err))),
    );
  }, []);

  return (
    <>
      <header className="bar">
        <h1>{t.wallet.heading}</h1>
        <span className="sub">{t.wallet.tagline}</span>
        <LanguageSwitch />
      </header>
      <main>
        {error && <ErrorNotice>{error}</ErrorNotice>}
        {record === undefined && !error && <p>{t.wallet.opening}</p>}
        {record === null && new URLSearchParams(location.search).has('pay') && (
          <div className="notice" role="status">
            {t.wallet.requestWaiting}
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

mount(<App />, { i18n: true });
