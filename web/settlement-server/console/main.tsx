/**
 * The settlement console (settlement server, role 40), for the bank's operator: ledger accounts
 * with pending and posted balances, captured volume over time, recent authorizations, captures
 * and refunds, and settlement batches with their reports. Accounts are shown by id and kind only:
 * the console API never reads the card store.
 */
import { useEffect, useLayoutEffect, useRef, useState, type RefObject } from 'react';
import { mount } from '../../shared/mount.tsx';
import { amountDigits, amountText } from '../../shared/console/format.ts';
import { recent, type Page } from '../../shared/console/operator.ts';
import { ConsoleApp, DataTable, Id, Section, Status, Time, type Column, type Session } from '../../shared/console/ui.tsx';
import { VolumeChart, type BucketSize, type VolumeBucket } from './volume-chart.tsx';

interface Account {
  id: string;
  kind: string;
  currency: string;
  merchant_id: string | null;
  debits_pending: string;
  debits_posted: string;
  credits_pending: string;
  credits_posted: string;
  available: string;
}

interface Authorization {
  id: string;
  request_id: string;
  merchant_id: string;
  account_id: string | null;
  currency: string;
  amount: string;
  decision: string;
  decline_code: string | null;
  status: string;
  captured_amount: string;
  refunded_amount: string;
  hold_state: string | null;
  hold_expires_at: string | null;
  created_at: string;
}

interface Transfer {
  id: string;
  kind: string;
  debit_account_id: string;
  credit_account_id: string;
  currency: string;
  amount: string;
  pending_id: string | null;
  created_at: string;
}

interface Refund {
  id: string;
  authorization_id: string;
  request_id: string;
  currency: string;
  amount: string;
  created_at: string;
}

interface Batch {
  id: string;
  business_day: string;
  merchant_id: string;
  currency: string;
  captured_minor: string;
  refunded_minor: string;
  fees_minor: string;
  net_minor: string;
  payout_minor: string;
  line_count: number;
}

interface Report {
  batch: Batch;
  lines: Array<{ transfer_id: string; kind: string; payment_request_id: string; currency: string; amount_minor: string; fee_minor: string; net_minor: string; posted_at: string }>;
  totals: { captured_minor: string; refunded_minor: string; fees_minor: string; net_minor: string; payout_minor: string };
}

interface Data {
  accounts: Page<Account>;
  authorizations: Page<Authorization>;
  captures: Page<Transfer>;
  refunds: Page<Refund>;
  volume: Record<BucketSize, VolumeBucket[]>;
  batches: Batch[];
  loadedAt: Date;
}

const batchesPath = '/admin/v1/settlement-batches';

async function load(session: Session): Promise<Data> {
  const get = <T,>(path: string) => session.call<T>('GET', path);
  const [accounts, authorizations, captures, refunds, hour, day, batches] = await Promise.all([
    get<Page<Account>>('/admin/v1/accounts'),
    get<Page<Authorization>>(`/admin/v1/authorizations?limit=${recent}`),
    get<Page<Transfer>>(`/admin/v1/transfers?kind=post_pending&limit=${recent}`),
    get<Page<Refund>>(`/admin/v1/refunds?limit=${recent}`),
    get<{ buckets: VolumeBucket[] }>('/admin/v1/volume?bucket=hour'),
    get<{ buckets: VolumeBucket[] }>('/admin/v1/volume?bucket=day'),
    get<{ batches: Batch[] }>(batchesPath),
  ]);
  return { accounts, authorizations, captures, refunds, volume: { hour: hour.buckets, day: day.buckets }, batches: batches.batches, loadedAt: new Date() };
}

const money = (currency: string, minor: string) => <span className={minor.startsWith('-') ? 'negative' : undefined}>{amountDigits(minor, currency)}</span>;

const accountColumns: Column<Account>[] = [
  {
    header: 'Account',
    cell: (a) => (
      <>
        <Id value={a.id} />
        {a.merchant_id && (
          <span className="second-line">
            of <Id value={a.merchant_id} />
          </span>
        )}
      </>
    ),
  },
  { header: 'Kind', cell: (a) => a.kind.replace(/_/g, ' ') },
  { header: 'Currency', cell: (a) => a.currency },
  { header: 'Debits pending', numeric: true, cell: (a) => money(a.currency, a.debits_pending) },
  { header: 'Debits posted', numeric: true, cell: (a) => money(a.currency, a.debits_posted) },
  { header: 'Credits pending', numeric: true, cell: (a) => money(a.currency, a.credits_pending) },
  { header: 'Credits posted', numeric: true, cell: (a) => money(a.currency, a.credits_posted) },
  { header: 'Available', numeric: true, cell: (a) => <strong>{money(a.currency, a.available)}</strong> },
];

const authorizationColumns: Column<Authorization>[] = [
  { header: 'Time (UTC)', cell: (a) => <Time value={a.created_at} /> },
  {
    header: 'Payment request and merchant',
    cell: (a) => (
      <>
        <Id value={a.request_id} />
        <span className="second-line">
          <Id value={a.merchant_id} />
        </span>
      </>
    ),
  },
  { header: 'Cardholder account', cell: (a) => <Id value={a.account_id} /> },
  { header: 'Amount', numeric: true, cell: (a) => amountText(a.amount, a.currency) },
  { header: 'Status', cell: (a) => <>{<Status value={a.status} />}{a.decline_code && <> <code>{a.decline_code}</code></>}</> },
  { header: 'Captured', numeric: true, cell: (a) => amountDigits(a.captured_amount, a.currency) },
  { header: 'Refunded', numeric: true, cell: (a) => amountDigits(a.refunded_amount, a.currency) },
  { header: 'Hold expires (UTC)', cell: (a) => <Time value={a.hold_state === 'pending' ? a.hold_expires_at : null} /> },
];

const captureColumns: Column<Transfer>[] = [
  { header: 'Time (UTC)', cell: (t) => <Time value={t.created_at} /> },
  { header: 'Transfer', cell: (t) => <Id value={t.id} /> },
  { header: 'Cardholder account', cell: (t) => <Id value={t.debit_account_id} /> },
  { header: 'Merchant account', cell: (t) => <Id value={t.credit_account_id} /> },
  { header: 'Captured', numeric: true, cell: (t) => amountText(t.amount, t.currency) },
];

const refundColumns: Column<Refund>[] = [
  { header: 'Time (UTC)', cell: (r) => <Time value={r.created_at} /> },
  { header: 'Refund', cell: (r) => <Id value={r.id} /> },
  { header: 'Payment request', cell: (r) => <Id value={r.request_id} /> },
  { header: 'Refunded', numeric: true, cell: (r) => amountText(r.amount, r.currency) },
];

function Volume(props: { data: Data }) {
  const [size, setSize] = useState<BucketSize>('hour');
  const buckets = props.data.volume[size];
  const currencies = [...new Set([...props.data.volume.hour, ...props.data.volume.day].map((b) => b.currency))].sort();
  const [chosen, setChosen] = useState<string | null>(null);
  const currency = chosen && currencies.includes(chosen) ? chosen : (currencies[0] ?? 'JPY');
  return (
    <>
      <div className="controls">
        <fieldset className="segmented">
          <legend>Per</legend>
          {(['hour', 'day'] as const).map((option) => (
            <label key={option} className="checkbox">
              <input type="radio" name="volume-bucket" value={option} checked={size === option} onChange={() => setSize(option)} /> {option}
            </label>
          ))}
        </fieldset>
        {currencies.length > 1 && (
          <label>
            Currency{' '}
            <select value={currency} onChange={(event) => setChosen(event.target.value)}>
              {currencies.map((code) => (
                <option key={code}>{code}</option>
              ))}
            </select>
          </label>
        )}
      </div>
      <VolumeChart buckets={buckets} currency={currency} size={size} now={props.data.loadedAt} />
    </>
  );
}

function downloadText(name: string, text: string, type: string) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const link = document.createElement('a');
  link.href = url;
  link.download = name;
  link.click();
  setTimeout(() => URL.revokeObjectURL(url), 1_000);
}

const batchColumns: Column<Batch>[] = [
  { header: 'Business day', cell: (b) => b.business_day },
  { header: 'Batch', cell: (b) => <Id value={b.id} /> },
  { header: 'Merchant', cell: (b) => <Id value={b.merchant_id} /> },
  { header: 'Currency', cell: (b) => b.currency },
  { header: 'Captured', numeric: true, cell: (b) => money(b.currency, b.captured_minor) },
  { header: 'Refunded', numeric: true, cell: (b) => money(b.currency, b.refunded_minor) },
  { header: 'Fees', numeric: true, cell: (b) => money(b.currency, b.fees_minor) },
  { header: 'Net', numeric: true, cell: (b) => money(b.currency, b.net_minor) },
  { header: 'Payout', numeric: true, cell: (b) => money(b.currency, b.payout_minor) },
  { header: 'Lines', numeric: true, cell: (b) => b.line_count },
];

/** A batch's report: its lines and totals. */
function BatchReport(props: { report: Report; headingRef: RefObject<HTMLHeadingElement | null> }) {
  const { report } = props;
  return (
    <section aria-labelledby="settlement-report-heading">
      <h3 id="settlement-report-heading" ref={props.headingRef} tabIndex={-1}>
        Report of {report.batch.id} ({report.batch.business_day})
      </h3>
      <DataTable
        caption={`Lines of batch ${report.batch.id}`}
        columns={[
          { header: 'Posted (UTC)', cell: (l) => <Time value={l.posted_at} /> },
          { header: 'Kind', cell: (l) => l.kind },
          { header: 'Payment request', cell: (l) => <Id value={l.payment_request_id} /> },
          { header: 'Transfer', cell: (l) => <Id value={l.transfer_id} /> },
          { header: 'Amount', numeric: true, cell: (l) => money(l.currency, l.amount_minor) },
          { header: 'Fee', numeric: true, cell: (l) => money(l.currency, l.fee_minor) },
          { header: 'Net', numeric: true, cell: (l) => money(l.currency, l.net_minor) },
        ]}
        rows={report.lines}
        rowKey={(l) => l.transfer_id}
        empty="No lines."
      />
      <p>
        Totals: captured {amountText(report.totals.captured_minor, report.batch.currency)}, refunded {amountText(report.totals.refunded_minor, report.batch.currency)}, fees{' '}
        {amountText(report.totals.fees_minor, report.batch.currency)}, net {amountText(report.totals.net_minor, report.batch.currency)}, payout{' '}
        {amountText(report.totals.payout_minor, report.batch.currency)}.
      </p>
    </section>
  );
}

function Batches(props: { batches: Batch[]; session: Session }) {
  const [report, setReport] = useState<Report | null>(null);
  const [problem, setProblem] = useState<string | null>(null);
  const reportHeading = useRef<HTMLHeadingElement>(null);
  // A report just opened takes the focus, in the same commit that shows it.
  useLayoutEffect(() => {
    if (report) reportHeading.current?.focus();
  }, [report]);
  const open = async (batch: Batch) => {
    try {
      setReport(await props.session.call<Report>('GET', `${batchesPath}/${batch.id}/report`));
      setProblem(null);
    } catch (err) {
      setProblem(`The report of ${batch.id} could not be loaded (${(err as Error).message}).`);
    }
  };
  const csv = async (batch: Batch) => {
    try {
      const response = await fetch(`${batchesPath}/${batch.id}/report?format=csv`, { headers: { authorization: `Bearer ${props.session.token}` }, cache: 'no-store' });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      downloadText(`settlement-${batch.business_day}-${batch.id}.csv`, await response.text(), 'text/csv');
    } catch (err) {
      setProblem(`The CSV report of ${batch.id} could not be loaded (${(err as Error).message}).`);
    }
  };
  const reportColumn: Column<Batch> = {
    header: 'Report',
    cell: (b) => (
      <span className="header-actions">
        <button type="button" className="secondary" onClick={() => void open(b)} aria-label={`View the report of batch ${b.id}`}>
          View
        </button>
        <button type="button" className="secondary" onClick={() => void csv(b)} aria-label={`Download the CSV report of batch ${b.id}`}>
          CSV
        </button>
      </span>
    ),
  };
  return (
    <>
      {problem && (
        <p className="error" role="alert">
          {problem}
        </p>
      )}
      <DataTable caption="Settlement batches, newest business day first" columns={[...batchColumns, reportColumn]} rows={props.batches} rowKey={(b) => b.id} empty="No business day has been closed yet (kessai settle close)." />
      {report && <BatchReport report={report} headingRef={reportHeading} />}
    </>
  );
}

const sections = [
  { id: 'accounts', label: 'Accounts' },
  { id: 'volume', label: 'Payment volume' },
  { id: 'authorizations', label: 'Authorizations' },
  { id: 'captures', label: 'Captures' },
  { id: 'refunds', label: 'Refunds' },
  { id: 'batches', label: 'Settlement batches' },
];

function SettlementConsole() {
  const [issuerName, setIssuerName] = useState('');
  useEffect(() => {
    // The issuer's public metadata names the bank this server belongs to.
    fetch('/.well-known/kessai-issuer')
      .then((response) => (response.ok ? (response.json() as Promise<{ name: string }>) : { name: '' }))
      .then((metadata) => setIssuerName(metadata.name), () => undefined);
  }, []);
  return (
    <ConsoleApp
      title="Settlement console"
      subtitle={issuerName || undefined}
      checkPath="/admin/v1/accounts?limit=1"
      sections={sections}
      load={load}
      render={(data, session) => (
        <>
          <Section id="accounts" title="Accounts" intro="Balances in the ledger, in each account’s currency. Available = credits posted − debits posted − debits pending; an issuer funding account is negative by design.">
            <DataTable caption="Ledger accounts and balances" columns={accountColumns} rows={data.accounts.items} rowKey={(a) => a.id} empty="No accounts." hasMore={data.accounts.has_more} />
          </Section>
          <Section id="volume" title="Payment volume" intro="Captured amounts per period, from the ledger’s capture transfers.">
            <Volume data={data} />
          </Section>
          <Section id="authorizations" title="Authorizations">
            <DataTable caption={`Recent authorizations, newest first (at most ${recent})`} columns={authorizationColumns} rows={data.authorizations.items} rowKey={(a) => a.id} empty="No authorizations yet." hasMore={data.authorizations.has_more} />
          </Section>
          <Section id="captures" title="Captures">
            <DataTable caption={`Recent captures, newest first (at most ${recent})`} columns={captureColumns} rows={data.captures.items} rowKey={(t) => t.id} empty="No captures yet." hasMore={data.captures.has_more} />
          </Section>
          <Section id="refunds" title="Refunds">
            <DataTable caption={`Recent refunds, newest first (at most ${recent})`} columns={refundColumns} rows={data.refunds.items} rowKey={(r) => r.id} empty="No refunds yet." hasMore={data.refunds.has_more} />
          </Section>
          <Section id="batches" title="Settlement batches">
            <Batches batches={data.batches} session={session} />
          </Section>
        </>
      )}
    />
  );
}

mount(<SettlementConsole />);
