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
import type { Order } from '../types.ts';

const labels: Record<string, { text: string; tone: 'ok' | 'bad' | 'wait' }> = {
  awaiting_payment: { text: 'Waiting for payment', tone: 'wait' },
  paid: { text: 'Approved', tone: 'ok' },
  captured: { text: 'Approved and captured', tone: 'ok' },
  declined: { text: 'Declined', tone: 'bad' },
  cancelled: { text: 'Cancelled', tone: 'bad' },
  expired: { text: 'Expired', tone: 'bad' },
  voided: { text: 'Voided', tone: 'bad' },
  refunded: { text: 'Refunded', tone: 'wait' },
  partially_refunded: { text: 'Partly refunded', tone: 'ok' },
};
const settled = new Set(['captured', 'declined', 'cancelled', 'expired', 'voided', 'partially_refunded', 'refunded']);

function qrDataUrl(text: string): string {
  const svg = renderSVG(text, { ecc: 'M', border: 2, pixelSize: 8 });
  return `data:image/svg+xml;charset=utf-8,${encodeURIComponent(svg)}`;
}

function OrderPage({ id }: { id: string }) {
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
          setHistory((seen) => [...seen, { status: next.status, at: new Date().toLocaleTimeString() }]);
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

  const label = order ? (labels[order.status] ?? { text: order.status, tone: 'wait' as const }) : null;
  return (
    <>
      <header className="bar">
        <h1>Kessai Tea House</h1>
        <span className="sub">your order</span>
        <nav aria-label="Shop">
          <a href="../store/">Back to the shop</a>
        </nav>
      </header>
      <main>
        {error && (
          <div className="notice bad" role="alert">
            {error}
          </div>
        )}
        {!order && !error && <p>Loading the order…</p>}
        {order && label && (
          <div className="layout">
            <section className="card" aria-labelledby="order-title">
              <h2 id="order-title">
                Order <span className="mono">{order.id}</span>
              </h2>
              <p aria-live="polite" aria-atomic="true">
                Status:{' '}
                <span className={`status ${label.tone}`} data-testid="order-status" data-status={order.status}>
                  {label.text}
                </span>
                {order.decline_code && <span className="muted"> — reason: {order.decline_code.replace(/_/g, ' ')}</span>}
              </p>
              <LineItems caption="Items of the order" currency={order.currency} items={order.lines} totalMinor={order.amount_minor} totalTestId="order-total">
                {order.captured_minor !== '0' && <FooterRow label="Captured" amountMinor={order.captured_minor} currency={order.currency} />}
                {order.refunded_minor !== '0' && <FooterRow label="Refunded" amountMinor={order.refunded_minor} currency={order.currency} />}
              </LineItems>
              {order.payment_request_id && (
                <p className="muted">
                  Payment request <span className="mono" data-testid="payment-request-id">{order.payment_request_id}</span>
                  {order.authorization_id && (
                    <>
                      {' '}
                      · authorization <span className="mono">{order.authorization_id}</span>
                    </>
                  )}
                </p>
              )}
              <h3 style={{ marginTop: '1.25rem' }}>What happened</h3>
              <ol data-testid="order-history">
                {history.map((entry, index) => (
                  <li key={index}>
                    {entry.at}: {labels[entry.status]?.text ?? entry.status}
                  </li>
                ))}
              </ol>
            </section>
            <aside className="card" aria-labelledby="pay-title">
              <h2 id="pay-title">Pay</h2>
              {order.status === 'awaiting_payment' && order.payment_link ? (
                <>
                  <p>Scan the code with your phone, or open the link in your Kessai wallet. If you chose to send it to your wallet, it is waiting there.</p>
                  <img className="qr" src={qrDataUrl(order.payment_link)} alt={`QR code of the payment link ${order.payment_link}`} data-testid="payment-qr" />
                  <p>
                    <a href={order.payment_link} className="mono" data-testid="payment-link">
                      {order.payment_link}
                    </a>
                  </p>
                  <p className="muted">This page updates by itself when the payment is approved or declined.</p>
                </>
              ) : (
                <p>{settled.has(order.status) || order.status === 'paid' ? 'Nothing more to pay for this order.' : 'No payment link.'}</p>
              )}
            </aside>
          </div>
        )}
      </main>
    </>
  );
}

const id = new URLSearchParams(location.search).get('id') ?? '';
mount(
  /^ord_[0-9a-hjkmnp-tv-z]{26}$/.test(id) ? (
    <OrderPage id={id} />
  ) : (
    <main>
      <p role="alert">This page needs an order id (…/order/?id=ord_…).</p>
    </main>
  ),
);
