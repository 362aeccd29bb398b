/**
 * The enrolled wallet's screen: payment requests arriving live, a payment link to open, the history
 * of payments, and the wallet's handle, export and removal. A chosen request opens the confirmation.
 */
import { useCallback, useEffect, useRef, useState, type FormEvent } from 'react';
import { describeError } from '../../shared/api.ts';
import { textOf, useI18n } from '../../shared/i18n.tsx';
import { safeDisplay } from '../../../packages/protocol/src/display.ts';
import type { TerminalRequestPayload } from '../../../packages/protocol/src/messages.ts';
import { Confirm } from './confirm.tsx';
import { describedBy, Field } from './field.tsx';
import { addHistory, removeWallet, toFile, type HistoryEntry, type WalletRecord } from './store.ts';
import { Terminal, walletHostConfig } from './terminal.ts';
import { ErrorNotice } from '../../shared/notice.tsx';

function statusTone(status: string): 'ok' | 'bad' | 'wait' {
  if (status === 'approved' || status === 'captured') return 'ok';
  if (status === 'pending' || status === 'authorizing') return 'wait';
  return 'bad';
}

export function Wallet({ record, onRecord, onRemoved }: { record: WalletRecord; onRecord: (record: WalletRecord) => void; onRemoved: () => void }) {
  const { t: all, money, dateTime } = useI18n();
  const t = all.wallet.home;
  const reason = (code: string | null) => (code ? (textOf(all.wallet.declineReasons, code) ?? code.replace(/_/g, ' ')) : '');
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
      (err: unknown) => setLinkError(t.linkFailed(describeError(err))),
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
    if (!confirm(t.removeConfirm)) return;
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

  const streamText = stream.state === 'open' ? t.connected : stream.state === 'connecting' ? t.connecting : t.reconnecting(stream.detail ?? '');
  return (
    <>
      {result && (
        <div className={`notice ${statusTone(result.status) === 'ok' ? 'ok' : 'bad'}`} role="status" data-testid="payment-result" data-status={result.status}>
          {result.status === 'approved' || result.status === 'captured'
            ? t.paid(money(result.amount_minor, result.currency), safeDisplay(result.merchant))
            : result.status === 'authorizing'
              ? t.unknown(money(result.amount_minor, result.currency), safeDisplay(result.merchant))
              : t.notPaid(reason(result.decline_code) || result.status, safeDisplay(result.merchant), money(result.amount_minor, result.currency))}
        </div>
      )}
      <div className="layout">
        <div>
          <section className="card" aria-labelledby="incoming-title">
            <h2 id="incoming-title">{t.requests}</h2>
            <p className="muted" role="status" data-testid="stream-state" data-state={stream.state}>
              {streamText}
            </p>
            {incoming.length === 0 ? (
              <p>{t.noRequest}</p>
            ) : (
              <ul style={{ listStyle: 'none', padding: 0, margin: 0 }} aria-live="polite">
                {incoming.map((view) => (
                  <li key={view.rid} className="row" style={{ justifyContent: 'space-between', borderBottom: '1px solid var(--line)', padding: '.5rem 0' }}>
                    <span>
                      <strong>{safeDisplay(view.merchant.name)}</strong> — {money(view.amount_minor, view.currency)}, {t.itemCount(view.line_items.length)}
                    </span>
                    <button type="button" onClick={() => setSelected(view)} data-rid={view.rid}>
                      {t.review}
                    </button>
                  </li>
                ))}
              </ul>
            )}
            <form onSubmit={(event) => void openLink(event)} noValidate style={{ marginTop: '1rem' }}>
              <Field id="link" label={t.openLink} hint={t.linkHint} error={linkError}>
                <div className="row" style={{ flexWrap: 'nowrap' }}>
                  <input id="link" value={link} onChange={(event) => setLink(event.target.value)} autoComplete="off" spellCheck={false} aria-describedby={describedBy('link', true, linkError)} />
                  <button type="submit" className="secondary">
                    {t.open}
                  </button>
                </div>
              </Field>
            </form>
          </section>
          <section className="card" aria-labelledby="history-title">
            <h2 id="history-title">{t.history}</h2>
            {record.history.length === 0 ? (
              <p className="muted">{t.noPayments}</p>
            ) : (
              <table data-testid="history">
                <caption className="sr-only">{t.historyCaption}</caption>
                <thead>
                  <tr>
                    <th scope="col">{t.when}</th>
                    <th scope="col">{t.merchant}</th>
                    <th scope="col" className="num">{t.amount}</th>
                    <th scope="col">{t.result}</th>
                  </tr>
                </thead>
                <tbody>
                  {record.history.map((entry) => (
                    <tr key={entry.rid}>
                      <td>{dateTime(entry.at)}</td>
                      <td>{safeDisplay(entry.merchant)}</td>
                      <td className="num">{money(entry.amount_minor, entry.currency)}</td>
                      <td>
                        <span className={`status ${statusTone(entry.status)}`}>{textOf(all.wallet.statuses, entry.status) ?? entry.status}</span> {entry.decline_code && <span className="muted">{reason(entry.decline_code)}</span>}
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
            <h2 id="wallet-title">{t.thisWallet}</h2>
            <p>
              <span className="muted">{t.handle}</span>
              <br />
              <span className="mono" data-testid="credential-id">
                {record.credential_id}
              </span>
            </p>
            <p className="row">
              <button type="button" className="secondary" onClick={() => void copyHandle()}>
                {t.copy}
              </button>
              <span role="status">{copied ? t.copied : ''}</span>
            </p>
            <p>
              <span className="muted">{t.bank}</span>
              <br />
              {record.issuer.name}
            </p>
            <p className="muted">{record.imported ? t.imported : t.enrolled} {t.keyNote}</p>
            {hostAuthUrl !== null && new URL(record.auth_base_url).origin !== new URL(hostAuthUrl).origin && (
              <ErrorNotice>{t.otherServer(record.auth_base_url, hostAuthUrl)}</ErrorNotice>
            )}
            <div className="row">
              <button type="button" onClick={exportFile}>
                {t.export}
              </button>
              <button type="button" className="danger" onClick={() => void remove()}>
                {t.remove}
              </button>
            </div>
          </section>
        </aside>
      </div>
    </>
  );
}
