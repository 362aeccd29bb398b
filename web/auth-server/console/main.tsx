/**
 * The authentication-server console (role 30), for the broker's operator: payment requests and
 * their states, credential records with a revoke button, and webhook deliveries. This server keeps
 * no personal data, and the console shows none: ids, states, amounts and times only.
 */
import { useCallback, useState } from 'react';
import { mount } from '../../shared/mount.tsx';
import { amountDigits, amountText } from '../../shared/console/format.ts';
import { recent, type Page } from '../../shared/console/operator.ts';
import {
  ConsoleApp,
  DataTable,
  Id,
  Section,
  Status,
  Time,
  useActionMessage,
  type Column,
  type Session,
} from '../../shared/console/ui.tsx';

interface PaymentRequest {
  id: string;
  merchant_id: string;
  order_id: string;
  status: string;
  currency: string;
  amount_minor: string;
  captured_minor: string;
  refunded_minor: string;
  line_items: number;
  credential_id: string | null;
  issuer_id: string | null;
  decline_code: string | null;
  created_at: string;
  updated_at: string;
}

interface Credential {
  id: string;
  issuer_id: string;
  status: string;
  created_at: string;
  last_used_at: string | null;
}

interface Delivery {
  id: string;
  merchant_id: string;
  event_type: string;
  payment_request_id: string | null;
  state: string;
  attempts: number;
  last_status: number | null;
  next_attempt_at: string | null;
  delivered_at: string | null;
  dead_at: string | null;
  resent_at: string | null;
  created_at: string;
}

const statuses = ['pending', 'authorizing', 'approved', 'declined', 'cancelled', 'expired', 'captured', 'voided'] as const;

interface Data {
  requests: Page<PaymentRequest>;
  credentials: Page<Credential>;
  deliveries: Page<Delivery>;
}

const requestColumns: Column<PaymentRequest>[] = [
  { header: 'Created (UTC)', cell: (r) => <Time value={r.created_at} /> },
  {
    header: 'Payment request and order',
    cell: (r) => (
      <>
        <Id value={r.id} />
        <span className="second-line">
          order <code>{r.order_id}</code>
        </span>
      </>
    ),
  },
  { header: 'Merchant', cell: (r) => <Id value={r.merchant_id} /> },
  { header: 'Amount', numeric: true, cell: (r) => amountText(r.amount_minor, r.currency) },
  { header: 'Status', cell: (r) => <>{<Status value={r.status} />}{r.decline_code && <> <code>{r.decline_code}</code></>}</> },
  { header: 'Captured', numeric: true, cell: (r) => amountDigits(r.captured_minor, r.currency) },
  { header: 'Refunded', numeric: true, cell: (r) => amountDigits(r.refunded_minor, r.currency) },
  {
    header: 'Issuer and credential',
    cell: (r) =>
      r.issuer_id ? (
        <>
          {r.issuer_id}
          <span className="second-line">
            <Id value={r.credential_id} />
          </span>
        </>
      ) : (
        <span className="muted">—</span>
      ),
  },
];

const deliveryColumns: Column<Delivery>[] = [
  { header: 'Created (UTC)', cell: (d) => <Time value={d.created_at} /> },
  {
    header: 'Event',
    cell: (d) => (
      <>
        <code>{d.event_type}</code>
        <span className="second-line">
          <Id value={d.id} />
        </span>
      </>
    ),
  },
  { header: 'Payment request', cell: (d) => <Id value={d.payment_request_id} /> },
  { header: 'State', cell: (d) => <Status value={d.state} /> },
  { header: 'Attempts', numeric: true, cell: (d) => d.attempts },
  { header: 'Last HTTP status', numeric: true, cell: (d) => (d.last_status === null ? '—' : d.last_status === 0 ? 'no answer' : d.last_status) },
  { header: 'Delivered or next attempt (UTC)', cell: (d) => <Time value={d.delivered_at ?? d.next_attempt_at} /> },
];

/** The resend button of a dead event: the same event is queued again for a fresh retry schedule. */
function ResendButton(props: { delivery: Delivery; session: Session; onDone(message: string, failed: boolean): void }) {
  const [busy, setBusy] = useState(false);
  const { delivery } = props;
  if (delivery.state !== 'dead') return <span className="muted">—</span>;
  const resend = async () => {
    setBusy(true);
    try {
      await props.session.call('POST', `/admin/v1/webhook-deliveries/${delivery.id}/resend`);
      props.onDone(`Event ${delivery.id} queued again: it is delivered on a fresh retry schedule.`, false);
    } catch (err) {
      props.onDone(`Event ${delivery.id} could not be resent (${(err as Error).message}).`, true);
    } finally {
      setBusy(false);
    }
  };
  return (
    <button type="button" disabled={busy} onClick={() => void resend()} aria-label={`Resend event ${delivery.id}`}>
      Resend
    </button>
  );
}

function Deliveries(props: { page: Page<Delivery>; session: Session; reload(): void }) {
  const [messageLine, setMessage] = useActionMessage();
  const columns: Column<Delivery>[] = [
    ...deliveryColumns,
    {
      header: 'Action',
      cell: (d) => (
        <ResendButton
          delivery={d}
          session={props.session}
          onDone={(text, failed) => {
            setMessage({ text, failed });
            if (!failed) props.reload();
          }}
        />
      ),
    },
  ];
  return (
    <>
      {messageLine}
      <DataTable caption={`Webhook deliveries, newest first (at most ${recent})`} columns={columns} rows={props.page.items} rowKey={(d) => d.id} empty="No webhook events yet." hasMore={props.page.has_more} />
    </>
  );
}

/** The revoke button of one credential: asks once more in place, then calls the operator endpoint. */
function RevokeButton(props: { credential: Credential; session: Session; onRevoked(message: string): void; onFailed(message: string): void }) {
  const [confirming, setConfirming] = useState(false);
  const [busy, setBusy] = useState(false);
  const { credential } = props;
  if (credential.status !== 'active') return <span className="muted">—</span>;
  const revoke = async () => {
    setBusy(true);
    try {
      await props.session.call('POST', `/admin/v1/credentials/${credential.id}/revoke`);
      props.onRevoked(`Credential ${credential.id} revoked: every later use of it is refused.`);
    } catch (err) {
      props.onFailed(`Credential ${credential.id} could not be revoked (${(err as Error).message}).`);
    } finally {
      setBusy(false);
      setConfirming(false);
    }
  };
  if (!confirming) {
    return (
      <button type="button" className="danger" onClick={() => setConfirming(true)} aria-label={`Revoke credential ${credential.id}`}>
        Revoke
      </button>
    );
  }
  return (
    <span className="header-actions">
      <button type="button" className="danger confirm" disabled={busy} autoFocus onClick={() => void revoke()} aria-label={`Confirm: revoke credential ${credential.id}`}>
        Confirm revoke
      </button>
      <button type="button" className="secondary" disabled={busy} onClick={() => setConfirming(false)}>
        Cancel
      </button>
    </span>
  );
}

function Credentials(props: { page: Page<Credential>; session: Session; reload(): void }) {
  // After a revocation the row's buttons are gone: the focus moves to the message that says what happened.
  const [messageLine, setMessage] = useActionMessage();
  const columns: Column<Credential>[] = [
    { header: 'Credential', cell: (c) => <Id value={c.id} /> },
    { header: 'Issuer', cell: (c) => c.issuer_id },
    { header: 'Status', cell: (c) => <Status value={c.status} /> },
    { header: 'Enrolled (UTC)', cell: (c) => <Time value={c.created_at} /> },
    { header: 'Last used (UTC)', cell: (c) => <Time value={c.last_used_at} /> },
    {
      header: 'Action',
      cell: (c) => (
        <RevokeButton
          credential={c}
          session={props.session}
          onRevoked={(text) => {
            setMessage({ text, failed: false });
            props.reload();
          }}
          onFailed={(text) => setMessage({ text, failed: true })}
        />
      ),
    },
  ];
  return (
    <>
      {messageLine}
      <DataTable caption="Credential records, newest first (no card data is kept here)" columns={columns} rows={props.page.items} rowKey={(c) => c.id} empty="No credentials enrolled yet." hasMore={props.page.has_more} />
    </>
  );
}

const sections = [
  { id: 'payment-requests', label: 'Payment requests' },
  { id: 'credentials', label: 'Credentials' },
  { id: 'webhooks', label: 'Webhook deliveries' },
];

function AuthConsole() {
  const [status, setStatus] = useState('');
  // A new filter makes a new loader, which reloads at once.
  const load = useCallback(
    async (session: Session): Promise<Data> => {
      const [requests, credentials, deliveries] = await Promise.all([
        session.call<Page<PaymentRequest>>('GET', `/admin/v1/payment-requests?limit=${recent}${status ? `&status=${status}` : ''}`),
        session.call<Page<Credential>>('GET', `/admin/v1/credentials?limit=${recent}`),
        session.call<Page<Delivery>>('GET', `/admin/v1/webhook-deliveries?limit=${recent}`),
      ]);
      return { requests, credentials, deliveries };
    },
    [status],
  );
  return (
    <ConsoleApp
      title="Authentication-server console"
      checkPath="/admin/v1/credentials?limit=1"
      sections={sections}
      load={load}
      render={(data, session, reload) => (
        <>
          <Section id="payment-requests" title="Payment requests">
            <div className="controls">
              <label htmlFor="status-filter">Status</label>
              <select id="status-filter" value={status} onChange={(event) => setStatus(event.target.value)}>
                <option value="">all</option>
                {statuses.map((s) => (
                  <option key={s} value={s}>
                    {s}
                  </option>
                ))}
              </select>
            </div>
            <DataTable
              caption={`Payment requests${status ? ` (${status})` : ''}, newest first (at most ${recent})`}
              columns={requestColumns}
              rows={data.requests.items}
              rowKey={(r) => r.id}
              empty={status ? `No payment requests are ${status}.` : 'No payment requests yet.'}
              hasMore={data.requests.has_more}
            />
          </Section>
          <Section id="credentials" title="Credentials" intro="A revoked credential cannot approve payments any more; the payer enrolls again.">
            <Credentials page={data.credentials} session={session} reload={reload} />
          </Section>
          <Section id="webhooks" title="Webhook deliveries" intro="Events sent to the shops, signed; a failed one is retried for about four days (30 s, 2 min, 10 min … 24 h), then it is dead until resent.">
            <Deliveries page={data.deliveries} session={session} reload={reload} />
          </Section>
        </>
      )}
    />
  );
}

mount(<AuthConsole />);
