/**
 * The order page: the order's lines and total, its payment link with a QR code while it waits for
 * the payment, and its state kept up to date without reloading (the shop is asked every second
 * until the order settles, then every few seconds for a later refund).
 */
import { useEffect, useRef, useState } from 'react';
import { renderSVG } from 'uqr';
import '../../shared/ui.css';
import { api, describeError } from '../../shared/api.ts';
import { FooterRow, LineItems } from '../../shared/line-items.tsx';
import { mount } from '../../shared/mount.tsx';
import { LanguageSwitch, textOf, useI18n, useTitle } from '../../shared/i18n.tsx';
import type { Order } from '../types.ts';
import { ErrorNotice } from '../../shared/notice.tsx';

/** The tone of each order status; its text is in the message catalogue (order.statuses). */
const tones: Record<string, 'ok' | 'bad' | 'wait'> = {
  awaiting_payment: 'wait',
  paid: 'ok',
  captured: 'ok',
  declined: 'bad',
  cancelled: 'bad',
  expired: 'bad',
  voided: 'bad',
  refunded: 'wait',
  partially_refunded: 'ok',
};
const settled = new Set(['captured', 'declined', 'cancelled', 'expired', 'voided', 'partially_refunded', 'refunded']);

function qrDataUrl(text: string): string {
  const svg = renderSVG(text, { ecc: 'M', border: 2, pixelSize: 8 });
  return `data:image/svg+xml;charset=utf-8,${encodeURIComponent(svg)}`;
}

function OrderPage({ id }: { id: string }) {
  const { t, time } = useI18n();
  useTitle(t.order.title);
  const statusText = (status: string) => textOf(t.order.statuses, status) ?? status;
  const [order, setOrder] = useState<Order | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [history, setHistory] = useState<Array<{ status: string; at: string }>>([]);
  const last = useRef<string | null>(null);

  useEffect(() => {
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const poll = async () => {
      let delay = 1000;
      try {
        const next = await api<Order>('GET', `/api/orders/${encodeURIComponent(id)}`);
        if (stopped) return;
        setError(null);
        setOrder(next);
        const key = `${next.status}:${next.refunded_minor}`;
        if (key !== last.current) {
          last.current = key;
          setHistory((seen) => [...seen, { status: next.status, at: new Date().toISOString() }]);
        }
        if (settled.has(next.status)) delay = 5000;
      } catch (err) {
        if (stopped) return;
        setError(describeError(err));
        delay = 3000;
      }
      timer = setTimeout(() => void poll(), delay);
    };
    void poll();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, [id]);

  const label = order ? { text: statusText(order.status), tone: tones[order.status] ?? 'wait' } : null;
  return (
    <>
      <header className="bar">
        <h1>{t.shopName}</h1>
        <span className="sub">{t.order.tagline}</span>
        <nav aria-label={t.store.navLabel}>
          <a href="../store/">{t.order.back}</a>
        </nav>
        <LanguageSwitch />
      </header>
      <main>
        {error && <ErrorNotice>{error}</ErrorNotice>}
        {!order && !error && <p>{t.order.loading}</p>}
        {order && label && (
          <div className="layout">
            <section className="card" aria-labelledby="order-title">
              <h2 id="order-title">
                {t.order.order} <span className="mono">{order.id}</span>
              </h2>
              <p aria-live="polite" aria-atomic="true">
                {t.order.status}{' '}
                <span className={`status ${label.tone}`} data-testid="order-status" data-status={order.status}>
                  {label.text}
                </span>
                {order.decline_code && <span className="muted"> — {t.order.reason} {order.decline_code.replace(/_/g, ' ')}</span>}
              </p>
              <LineItems caption={t.order.caption} currency={order.currency} items={order.lines} totalMinor={order.amount_minor} totalTestId="order-total">
                {order.captured_minor !== '0' && <FooterRow label={t.items.captured} amountMinor={order.captured_minor} currency={order.currency} />}
                {order.refunded_minor !== '0' && <FooterRow label={t.items.refunded} amountMinor={order.refunded_minor} currency={order.currency} />}
              </LineItems>
              {order.payment_request_id && (
                <p className="muted">
                  {t.order.paymentRequest} <span className="mono" data-testid="payment-request-id">{order.payment_request_id}</span>
                  {order.authorization_id && (
                    <>
                      {' '}
                      · {t.order.authorization} <span className="mono">{order.authorization_id}</span>
                    </>
                  )}
                </p>
              )}
              <h3 style={{ marginTop: '1.25rem' }}>{t.order.history}</h3>
              <ol data-testid="order-history">
                {history.map((entry, index) => (
                  <li key={index}>
                    {time(new Date(entry.at))}: {statusText(entry.status)}
                  </li>
                ))}
              </ol>
            </section>
            <aside className="card" aria-labelledby="pay-title">
              <h2 id="pay-title">{t.order.pay}</h2>
              {order.status === 'awaiting_payment' && order.payment_link ? (
                <>
                  <p>{t.order.scan}</p>
                  <img className="qr" src={qrDataUrl(order.payment_link)} alt={t.order.qrAlt(order.payment_link)} data-testid="payment-qr" />
                  <p>
                    <a href={order.payment_link} className="mono" data-testid="payment-link">
                      {order.payment_link}
                    </a>
                  </p>
                  <p className="muted">{t.order.updates}</p>
                </>
              ) : (
                <p>{settled.has(order.status) || order.status === 'paid' ? t.order.nothingToPay : t.order.noLink}</p>
              )}
            </aside>
          </div>
        )}
      </main>
    </>
  );
}

function MissingId() {
  const { t } = useI18n();
  return (
    <main>
      <p role="alert">{t.order.needsId}</p>
    </main>
  );
}

const id = new URLSearchParams(location.search).get('id') ?? '';
mount(/^ord_[0-9a-hjkmnp-tv-z]{26}$/.test(id) ? <OrderPage id={id} /> : <MissingId />, { i18n: true });
