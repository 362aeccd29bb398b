/**
 * The confirmation screen: the verified merchant, every item, quantity and total of a signed payment
 * request, the PIN, and approve, decline or not now.
 */
import { useEffect, useRef, useState, type FormEvent } from 'react';
import { describeError } from '../../shared/api.ts';
import { useI18n } from '../../shared/i18n.tsx';
import { LineItems } from '../../shared/line-items.tsx';
import { safeDisplay } from '../../../packages/protocol/src/display.ts';
import { lineItemsTotal } from '../../../packages/protocol/src/money.ts';
import type { TerminalRequestPayload } from '../../../packages/protocol/src/messages.ts';
import { describedBy, Field } from './field.tsx';
import type { HistoryEntry } from './store.ts';
import type { Outcome, Terminal } from './terminal.ts';
import { ErrorNotice } from '../../shared/notice.tsx';

export function Confirm({ view, terminal, onFinished, onBack }: { view: TerminalRequestPayload; terminal: Terminal; onFinished: (entry: HistoryEntry) => void; onBack: () => void }) {
  const { t: all, money, dateTime } = useI18n();
  const t = all.wallet.confirm;
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
      setPinError(t.pinFormat);
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
        setPinError(t.pinWrong(outcome.pin_tries_left));
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
        {t.title}
        {!view.livemode && (
          <>
            {' '}
            <span className="status wait" data-testid="test-mode">
              {t.test}
            </span>
          </>
        )}
      </h2>
      {!view.livemode && <p className="notice">{t.testNotice}</p>}
      <p>
        <span className="muted">{t.merchant}</span>
        <br />
        <strong style={{ fontSize: '1.25rem' }} data-testid="merchant-name">
          {safeDisplay(view.merchant.name)}
        </strong>{' '}
        <span className="status ok">{t.verified}</span>
      </p>
      <p className="muted">{t.signed(safeDisplay(view.order_id))}</p>
      <LineItems caption={t.caption} currency={view.currency} items={view.line_items} totalMinor={view.amount_minor} totalTestId="confirm-total" />
      <p className="muted">{t.validUntil(dateTime(view.expires_at))}</p>
      {!totalsAgree && <ErrorNotice>{t.totalsDisagree}</ErrorNotice>}
      {error && <ErrorNotice>{error}</ErrorNotice>}
      <form onSubmit={(event) => void approve(event)} noValidate>
        <Field id="pin" label={t.pin} hint={t.pinHint} error={pinError}>
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
            {busy === 'approve' ? t.paying : t.pay(money(view.amount_minor, view.currency))}
          </button>
          <button type="button" className="danger" disabled={busy !== null} onClick={() => void decline()}>
            {busy === 'decline' ? t.declining : t.decline}
          </button>
          <button type="button" className="secondary" disabled={busy !== null} onClick={onBack}>
            {t.notNow}
          </button>
        </div>
      </form>
    </section>
  );
}
