/**
 * What both operator consoles are made of: the sign-in with the operator token, the page frame
 * (title, section links, sign-out, refresh every refreshMs), sections and tables with captions and
 * column headers. Everything is reachable by keyboard with a visible focus ring (console.css).
 */
import { useCallback, useEffect, useRef, useState, type FormEvent, type ReactNode, type RefObject } from 'react';
import { forgetToken, operatorCall, storedToken, storeToken, TokenRefused } from './operator.ts';
import { timeText } from './format.ts';
import { limits } from '../../../packages/protocol/src/limits.ts';
import './console.css';

/** How often an open console reloads its data. */
export const refreshMs = limits.consoleRefreshMs;

export interface Session {
  token: string;
  call<T>(method: 'GET' | 'POST', path: string): Promise<T>;
}

interface ConsoleAppProps<T> {
  /** e.g. "Settlement console". */
  title: string;
  /** What the server is (an issuer's name), once known. */
  subtitle?: string | undefined;
  /** A cheap operator GET that tells whether a token is accepted. */
  checkPath: string;
  sections: ReadonlyArray<{ id: string; label: string }>;
  load(session: Session): Promise<T>;
  render(data: T, session: Session, reload: () => void): ReactNode;
}

export function ConsoleApp<T>(props: ConsoleAppProps<T>) {
  const [token, setToken] = useState<string | null>(() => storedToken());
  const [notice, setNotice] = useState<string | null>(null);
  // Right after signing in, the focus moves to the console's heading (the sign-in form is gone).
  const [justSignedIn, setJustSignedIn] = useState(false);
  const signOut = useCallback((why: string | null) => {
    forgetToken();
    setToken(null);
    setNotice(why);
  }, []);
  const heading = props.subtitle ? `${props.title} — ${props.subtitle}` : props.title;
  useEffect(() => {
    document.title = `${heading} · Kessai`;
  }, [heading]);

  if (!token) {
    return (
      <SignIn
        heading={heading}
        checkPath={props.checkPath}
        notice={notice}
        onSignedIn={(accepted) => {
          storeToken(accepted);
          setNotice(null);
          setJustSignedIn(true);
          setToken(accepted);
        }}
      />
    );
  }
  return <SignedIn {...props} heading={heading} token={token} signOut={signOut} focusHeading={justSignedIn} />;
}

function SignIn(props: { heading: string; checkPath: string; notice: string | null; onSignedIn(token: string): void }) {
  const [value, setValue] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const token = value.trim();
    if (!token) return setError('Enter the operator token.');
    setBusy(true);
    try {
      await operatorCall(token, 'GET', props.checkPath);
      props.onSignedIn(token);
    } catch (err) {
      setError(err instanceof TokenRefused ? 'The server refused this operator token.' : `The server could not be reached (${(err as Error).message}).`);
      setBusy(false);
    }
  };
  return (
    <main id="main" className="sign-in">
      <h1>{props.heading}</h1>
      {props.notice && (
        <p className="notice" role="status">
          {props.notice}
        </p>
      )}
      <form onSubmit={submit} noValidate aria-labelledby="sign-in-heading">
        <h2 id="sign-in-heading">Operator sign-in</h2>
        <label htmlFor="operator-token">Operator token</label>
        <p id="operator-token-hint" className="hint">
          The token is in the file <code>operator-token</code> in the data folder; <code>npm start</code> prints where it is.
        </p>
        <input
          id="operator-token"
          name="operator-token"
          type="password"
          autoComplete="off"
          spellCheck={false}
          autoFocus
          required
          value={value}
          aria-invalid={error ? true : undefined}
          aria-describedby={error ? 'operator-token-hint operator-token-error' : 'operator-token-hint'}
          onChange={(event) => setValue(event.target.value)}
        />
        {error && (
          <p id="operator-token-error" className="error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
    </main>
  );
}

function SignedIn<T>(props: ConsoleAppProps<T> & { heading: string; token: string; signOut(why: string | null): void; focusHeading: boolean }) {
  const { load, signOut, token } = props;
  const headingRef = useRef<HTMLHeadingElement>(null);
  useEffect(() => {
    if (props.focusHeading) headingRef.current?.focus();
  }, [props.focusHeading]);
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<string | null>(null);
  const [updatedAt, setUpdatedAt] = useState<string | null>(null);
  const [live, setLive] = useState(true);
  // Only the latest load's answer is shown: a slower, older one that arrives after it is dropped.
  const latest = useRef(0);

  const session: Session = { token, call: (method, path) => operatorCall(token, method, path) };
  const reload = useCallback(async () => {
    const mine = ++latest.current;
    try {
      const next = await load({ token, call: (method, path) => operatorCall(token, method, path) });
      if (mine !== latest.current) return;
      setData(next);
      setError(null);
      setUpdatedAt(new Date().toISOString());
    } catch (err) {
      if (mine !== latest.current) return;
      if (err instanceof TokenRefused) signOut('The server refused the operator token: sign in again.');
      else setError(`Could not load the data (${(err as Error).message}). Retrying.`);
    }
  }, [load, signOut, token]);

  useEffect(() => {
    void reload();
    if (!live) return;
    const timer = setInterval(() => void reload(), refreshMs);
    return () => clearInterval(timer);
  }, [reload, live]);

  return (
    <>
      <a className="skip-link" href="#main">
        Skip to the data
      </a>
      <ConsoleHeader
        heading={props.heading}
        headingRef={headingRef}
        updatedAt={updatedAt}
        live={live}
        onLive={setLive}
        onReload={() => void reload()}
        onSignOut={() => signOut('Signed out.')}
      />
      <SectionLinks sections={props.sections} />
      <main id="main" tabIndex={-1}>
        {error && (
          <p className="error" role="alert">
            {error}
          </p>
        )}
        {data === undefined ? <p role="status">Loading…</p> : props.render(data, session, () => void reload())}
      </main>
    </>
  );
}

/** The console's header: its heading, when the data was loaded, the live switch, refresh and sign-out. */
function ConsoleHeader(props: {
  heading: string;
  headingRef: RefObject<HTMLHeadingElement | null>;
  updatedAt: string | null;
  live: boolean;
  onLive(live: boolean): void;
  onReload(): void;
  onSignOut(): void;
}) {
  const { updatedAt, live } = props;
  return (
    <header className="console-header">
      <div>
        <h1 ref={props.headingRef} tabIndex={-1}>
          {props.heading}
        </h1>
        <p className="hint">
          Signed in with the operator token. <span aria-live="off">Updated {updatedAt ? `${timeText(updatedAt)} UTC` : '…'}</span>
        </p>
      </div>
      <div className="header-actions">
        <label className="checkbox">
          <input type="checkbox" checked={live} onChange={(event) => props.onLive(event.target.checked)} /> Refresh every {refreshMs / 1000} s
        </label>
        <button type="button" className="secondary" onClick={props.onReload}>
          Refresh now
        </button>
        <button type="button" className="secondary" onClick={props.onSignOut}>
          Sign out
        </button>
      </div>
    </header>
  );
}

/** Links to the page's sections. */
function SectionLinks(props: { sections: ReadonlyArray<{ id: string; label: string }> }) {
  return (
    <nav aria-label="Sections">
      <ul>
        {props.sections.map((section) => (
          <li key={section.id}>
            <a href={`#${section.id}`}>{section.label}</a>
          </li>
        ))}
      </ul>
    </nav>
  );
}

/** The outcome of a row's action (resend, revoke); `failed` shows it as an error. */
export interface ActionMessage {
  text: string;
  failed: boolean;
}

/**
 * A status line for the outcome of a row's action, and its setter. The line takes the focus when the
 * message changes: after the action the row's buttons may be gone, and the focus must not go with them.
 */
export function useActionMessage(): [ReactNode, (message: ActionMessage) => void] {
  const [message, setMessage] = useState<ActionMessage | null>(null);
  const ref = useRef<HTMLParagraphElement>(null);
  useEffect(() => {
    if (message) ref.current?.focus();
  }, [message]);
  const className = message?.failed ? 'error' : message ? 'notice' : undefined;
  const line = (
    <p ref={ref} tabIndex={-1} className={className} role="status">
      {message?.text}
    </p>
  );
  return [line, setMessage];
}

export function Section(props: { id: string; title: string; children: ReactNode; intro?: ReactNode }) {
  return (
    <section id={props.id} aria-labelledby={`${props.id}-heading`}>
      <h2 id={`${props.id}-heading`}>{props.title}</h2>
      {props.intro && <p className="hint">{props.intro}</p>}
      {props.children}
    </section>
  );
}

export interface Column<R> {
  header: string;
  cell(row: R): ReactNode;
  /** Right-aligned, tabular figures. */
  numeric?: boolean;
}

/** A table with its caption and column headers; scrolls sideways inside a focusable region when narrow. */
export function DataTable<R>(props: { caption: string; columns: ReadonlyArray<Column<R>>; rows: readonly R[]; rowKey(row: R): string; empty: string; hasMore?: boolean }) {
  return (
    <div className="table-wrap" role="region" aria-label={props.caption} tabIndex={0}>
      <table>
        <caption>{props.caption}</caption>
        <thead>
          <tr>
            {props.columns.map((column) => (
              <th key={column.header} scope="col" className={column.numeric ? 'num' : undefined}>
                {column.header}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {props.rows.length === 0 ? (
            <tr>
              <td colSpan={props.columns.length} className="empty">
                {props.empty}
              </td>
            </tr>
          ) : (
            props.rows.map((row) => (
              <tr key={props.rowKey(row)}>
                {props.columns.map((column) => (
                  <td key={column.header} className={column.numeric ? 'num' : undefined}>
                    {column.cell(row)}
                  </td>
                ))}
              </tr>
            ))
          )}
        </tbody>
      </table>
      {props.hasMore && <p className="hint">The newest {props.rows.length} are shown; older ones are left out.</p>}
    </div>
  );
}

export function Id(props: { value: string | null }) {
  return props.value ? <code className="id">{props.value}</code> : <span className="muted">—</span>;
}

export function Status(props: { value: string }) {
  return <span className={`status status-${props.value.replace(/[^a-z_]/g, '')}`}>{props.value.replace(/_/g, ' ')}</span>;
}

/** A UTC time; in a table cell the date and the time of day stand on two lines (console.css). */
export function Time(props: { value: string | null }) {
  if (!props.value) return <span className="muted">—</span>;
  const [date, clock] = timeText(props.value).split(' ');
  return (
    <time dateTime={props.value}>
      <span className="date">{date}</span> <span className="clock">{clock}</span>
    </time>
  );
}
