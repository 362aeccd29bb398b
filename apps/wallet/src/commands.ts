/**
 * `kessai wallet …`: the terminal (role 10) on the command line. Enrollment (301–305) onto the
 * removable storage; payments pushed to it (403) or opened from a payment link, shown from the
 * authentication server's signed view and answered with the device key and the PIN (404); the
 * final state (408); revocation of a lost storage with the recovery code. Prompts go to the
 * terminal (stderr); results go to stdout, one line each.
 */
import { readFile, stat } from 'node:fs/promises';
import type { Readable, Writable } from 'node:stream';
import * as prompts from '@clack/prompts';
import type { Command } from 'commander';
import { errors as undiciErrors } from 'undici';
import {
  declineCatalog,
  expiryPattern,
  formatAmount,
  idPattern,
  isCurrency,
  isExpired,
  isValidCardNumber,
  KessaiError,
  limits,
  lineItemsTotal,
  normalizeCardNumber,
  safeDisplay,
  Secret,
  type ConversionMode,
  type JWK,
  type TerminalOutcome,
  type TerminalRequestPayload,
} from '@kessai/protocol';
import { z } from 'zod';
import { WalletClient, type VerifiedRequest } from '@kessai/sdk';
import { assertMayEnroll, isPemCertificate, loadWallet, openStorage, replaceSealedCredential, saveWallet, storageFileBytesMax, StorageError, StorageMissingError, type LoadedWallet } from './storage.ts';

/** Problems the command line finds itself, before any server is asked. */
export type WalletCliErrorCode = 'input_required' | 'input_invalid' | 'cancelled';

export class WalletCliError extends Error {
  readonly code: WalletCliErrorCode;
  constructor(code: WalletCliErrorCode, message: string) {
    super(message);
    this.name = 'WalletCliError';
    this.code = code;
  }
}

/** Where the commands read and write; main.ts passes the process's own. */
export interface WalletIo {
  stdin: Readable & { isTTY?: boolean };
  stdout: Writable;
  stderr: Writable;
  env: Readonly<Record<string, string | undefined>>;
}

/** Consecutive reconnections of `listen` after the event stream drops, and the first pause (doubling). */
export const listenReconnectsMax = 5;
export const listenReconnectDelayMsFirst = 1_000;
/** Request ids `listen` remembers, so a request pushed twice is shown once. */
const seenRequestsMax = 1_000;

const modeDescriptions: Record<ConversionMode, string> = {
  reseal: 'reseal — the authentication server re-seals your credential for the issuer, in memory, at each payment (embodiment 1)',
  pass_through: 'pass_through — your credential is sealed for the issuer; the authentication server cannot open it (embodiment 2)',
};

const automationNote = '--yes and --pin-from-env are for automation (tests, the demo): a person should confirm and type the PIN at the prompt.';

/** The file `kessai start` writes the development directory's public key to, in its data folder. */
export const directoryKeyFile = 'directory-key.jwk';
const directoryPublicKey = z.looseObject({ kty: z.literal('EC'), crv: z.literal('P-256'), x: z.string().max(64), y: z.string().max(64) }).refine((jwk) => !('d' in jwk), 'a public key');

interface PayOptions {
  storage: string;
  pinFromEnv?: string;
  yes?: boolean;
}

export function registerWalletCommands(program: Command, io: WalletIo = { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr, env: process.env }): Command {
  const wallet = program.command('wallet').description('the terminal (role 10): enroll a card onto removable storage and pay from it');

  wallet
    .command('enroll')
    .description('enroll a card (steps 301–305): the sealed credential and the device key go onto the storage folder')
    .requiredOption('--storage <dir>', 'the removable storage folder (must exist)')
    .requiredOption('--auth <url>', 'the authentication server, https://…')
    .requiredOption('--ca <file>', 'the CA certificate (PEM) the servers are signed by; copied onto the storage')
    .option('--name <name>', 'cardholder name as on the card (asked if absent)')
    .option('--card <number>', 'card number (asked if absent; on the command line it is visible to other users of this machine)')
    .option('--expiry <MM/YY>', 'card expiry (asked if absent)')
    .option('--directory-key <file>', 'the issuer directory\'s public key (JWK) this wallet trusts; copied onto the storage', defaultDirectoryKey(io))
    .option('--pin-from-env <var>', 'read the PIN from this environment variable (automation only)')
    .option('--force', 'replace a wallet already on the storage')
    .addHelpText('after', `\nThe issuer verifies the cardholder at enrollment: you are asked for the card's PIN, which is encrypted to the issuer (never readable by the authentication server).\n${automationNote}`)
    .action(run((options: EnrollOptions) => enroll(io, options)));

  wallet
    .command('revoke')
    .description('revoke a credential whose storage is lost, from any device, with the recovery code shown at enrollment')
    .requiredOption('--credential <id>', 'the credential id (cred_…) printed at enrollment')
    .requiredOption('--auth <url>', 'the authentication server, https://…')
    .requiredOption('--ca <file>', 'the CA certificate (PEM) the servers are signed by')
    .option('--recovery-code <code>', 'the recovery code (asked if absent; on the command line it is visible to other users of this machine)')
    .action(run((options: { credential: string; auth: string; ca: string; recoveryCode?: string }) => revoke(io, options)));

  wallet
    .command('listen')
    .description('wait for payment requests pushed to this wallet (step 403) and answer each')
    .requiredOption('--storage <dir>', 'the removable storage folder')
    .option('--once', 'stop after one request')
    .option('--pin-from-env <var>', 'read the PIN from this environment variable (automation only)')
    .option('--yes', 'approve without asking (automation only)')
    .addHelpText('after', `\n${automationNote}`)
    .action(run((options: PayOptions & { once?: boolean }) => listen(io, options)));

  wallet
    .command('pay')
    .description('open one payment request by id or payment link and answer it')
    .argument('<id-or-link>', 'payment request id (pr_…) or payment link')
    .requiredOption('--storage <dir>', 'the removable storage folder')
    .option('--pin-from-env <var>', 'read the PIN from this environment variable (automation only)')
    .option('--yes', 'approve without asking (automation only)')
    .addHelpText('after', `\n${automationNote}`)
    .action(run((idOrLink: string, options: PayOptions) => pay(io, idOrLink, options)));

  wallet
    .command('status')
    .description("show the wallet on the storage, or a payment request's final state (step 408)")
    .argument('[request-id]', 'payment request id (pr_…) or payment link')
    .requiredOption('--storage <dir>', 'the removable storage folder')
    .action(run((requestId: string | undefined, options: { storage: string }) => status(io, requestId, options)));

  return wallet;
}

/**
 * Expected failures print one line, `kessai wallet: <message> (<code>)`, and exit 1 (2 when the
 * storage is not there); anything else is a bug and crashes loudly.
 */
function run<A extends unknown[]>(action: (...args: A) => Promise<void>): (...args: [...A, Command]) => Promise<void> {
  return async (...args) => {
    const command = args[args.length - 1] as Command;
    try {
      await action(...(args.slice(0, -1) as A));
    } catch (err) {
      if (err instanceof StorageError || err instanceof KessaiError || err instanceof WalletCliError) {
        command.error(`kessai wallet: ${oneLine(err.message)} (${err.code})`, { exitCode: err instanceof StorageMissingError ? 2 : 1, code: `kessai.${err.code}` });
      }
      throw err;
    }
  };
}

// ---- enroll (steps 301–305) ------------------------------------------------------------------

interface EnrollOptions {
  storage: string;
  auth: string;
  ca: string;
  directoryKey: string;
  name?: string;
  card?: string;
  expiry?: string;
  pinFromEnv?: string;
  force?: boolean;
}

/** The development directory key that `kessai start` writes into its data folder. */
function defaultDirectoryKey(io: WalletIo): string {
  return `${io.env.KESSAI_DATA_DIR ?? './.kessai'}/${directoryKeyFile}`;
}

async function enroll(io: WalletIo, options: EnrollOptions): Promise<void> {
  const storage = await openStorage(options.storage);
  assertMayEnroll(storage, options.force ?? false);
  const authBaseUrl = httpsUrl(options.auth, '--auth');
  const caCertPem = await readCaCert(options.ca);
  const directoryKey = await readDirectoryKey(options.directoryKey);
  const pin = pinSource(io, options);

  const holderName = options.name !== undefined ? checkedName(options.name) : await ask(io, 'text', 'Cardholder name (as on the card)', checkName, 'pass --name');
  const card = new Secret(options.card !== undefined ? checkedCard(options.card) : normalizeCardNumber(await ask(io, 'password', 'Card number', checkCard, 'pass --card')));
  const expiry = options.expiry !== undefined ? checkedExpiry(options.expiry) : (await ask(io, 'text', 'Expiry (MM/YY)', checkExpiry, 'pass --expiry')).trim();

  const { wallet: stored, recoveryCode } = await WalletClient.enrollment({ authBaseUrl, caCertPem, directoryKey, holderName: holderName.trim(), cardNumber: card.expose(), expiry, pin: (await pin.next()).expose() });
  const saved = await saveWallet(storage.dir, stored, caCertPem, { force: options.force ?? false });
  const out = lines(io.stdout);
  out(`enrolled: credential ${stored.credential_id} (card ending ${card.expose().slice(-4)})`);
  out(`issuer: ${stored.issuer.name} (${stored.issuer.id}), conversion mode ${modeDescriptions[stored.issuer.conversion_mode]}`);
  out(`storage: ${saved.dir} — keep it safe; whoever holds it and knows the PIN can pay`);
  // Shown once and never written to the storage: a thief holding the storage must not find it there.
  out(`recovery code: ${recoveryCode.expose()} — write it down and keep it apart from the storage; it is shown only now`);
  out(`  if the storage is lost: kessai wallet revoke --credential ${stored.credential_id} --auth ${authBaseUrl} --ca <ca.cert.pem>`);
}

// ---- revoke (lost storage) -------------------------------------------------------------------

async function revoke(io: WalletIo, options: { credential: string; auth: string; ca: string; recoveryCode?: string }): Promise<void> {
  if (!idPattern('cred').test(options.credential)) throw new WalletCliError('input_invalid', `--credential ${options.credential.slice(0, 80)} is not a credential id (cred_…)`);
  const authBaseUrl = httpsUrl(options.auth, '--auth');
  const caCertPem = await readCaCert(options.ca);
  const checkCode = (value: string | undefined) => ((value ?? '').replace(/[\s-]/g, '').length === 20 ? undefined : 'a recovery code is 20 letters and digits (dashes optional)');
  const recoveryCode = new Secret(options.recoveryCode ?? (await ask(io, 'password', 'Recovery code', checkCode, 'pass --recovery-code')));
  const revoked = await WalletClient.revoke({ authBaseUrl, caCertPem, credentialId: options.credential, recoveryCode: recoveryCode.expose() });
  lines(io.stdout)(`revoked: credential ${revoked.credential_id} at ${revoked.revoked_at} (by the ${revoked.revoked_by}) — every later use of it is refused`);
}

function checkName(value: string | undefined): string | undefined {
  const name = value?.trim() ?? '';
  if (name.length === 0) return 'the cardholder name is required';
  if (name.length > limits.holderNameLengthMax) return `at most ${limits.holderNameLengthMax} characters`;
  return undefined;
}

function checkCard(value: string | undefined): string | undefined {
  return isValidCardNumber(normalizeCardNumber(value ?? '')) ? undefined : 'not a valid card number (12–19 digits, Luhn check)';
}

function checkExpiry(value: string | undefined): string | undefined {
  const expiry = value?.trim() ?? '';
  if (!expiryPattern.test(expiry)) return 'expiry is MM/YY';
  return isExpired(expiry, new Date()) ? 'the card has expired' : undefined;
}

function checkedName(value: string): string {
  const problem = checkName(value);
  if (problem) throw new KessaiError('validation_failed', `--name: ${problem}`);
  return value;
}

function checkedCard(value: string): string {
  const card = normalizeCardNumber(value);
  if (!isValidCardNumber(card)) throw new KessaiError('card_invalid', 'the card number is not valid (12–19 digits, Luhn check)');
  return card;
}

function checkedExpiry(value: string): string {
  const expiry = value.trim();
  if (!expiryPattern.test(expiry)) throw new KessaiError('validation_failed', '--expiry must be MM/YY');
  if (isExpired(expiry, new Date())) throw new KessaiError('card_expired');
  return expiry;
}

function httpsUrl(value: string, flag: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new WalletCliError('input_invalid', `${flag} is not a URL`);
  }
  if (url.protocol !== 'https:') throw new WalletCliError('input_invalid', `${flag} must be an https URL`);
  return url.href.replace(/\/+$/, '');
}

/** The directory's public key: a P-256 signing key as JWK, public members only. */
async function readDirectoryKey(file: string): Promise<JWK> {
  const info = await stat(file).catch(() => undefined);
  if (!info?.isFile()) throw new WalletCliError('input_invalid', `--directory-key ${file} is not a readable file (kessai start writes it to its data folder as ${directoryKeyFile})`);
  if (info.size > storageFileBytesMax) throw new WalletCliError('input_invalid', `--directory-key ${file} is larger than ${storageFileBytesMax} bytes`);
  let jwk: unknown;
  try {
    jwk = JSON.parse(await readFile(file, 'utf8'));
  } catch {
    throw new WalletCliError('input_invalid', `--directory-key ${file} is not JSON`);
  }
  const parsed = directoryPublicKey.safeParse(jwk);
  if (!parsed.success) throw new WalletCliError('input_invalid', `--directory-key ${file} is not a public P-256 signing key (JWK)`);
  return parsed.data as JWK;
}

async function readCaCert(file: string): Promise<string> {
  const info = await stat(file).catch(() => undefined);
  if (!info?.isFile()) throw new WalletCliError('input_invalid', `--ca ${file} is not a readable file`);
  if (info.size > storageFileBytesMax) throw new WalletCliError('input_invalid', `--ca ${file} is larger than ${storageFileBytesMax} bytes`);
  const pem = await readFile(file, 'utf8');
  if (!isPemCertificate(pem)) throw new WalletCliError('input_invalid', `--ca ${file} is not a PEM certificate`);
  return pem;
}

// ---- listen and pay (steps 403–404) ------------------------------------------------------------

async function listen(io: WalletIo, options: PayOptions & { once?: boolean }): Promise<void> {
  const loaded = await loadWallet(options.storage);
  const pin = pinSource(io, options); // fail before waiting, not when the first request arrives
  await withClient(loaded, async (client) => {
    const abort = new AbortController();
    const stop = () => abort.abort();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    const seen = new Set<string>();
    try {
      io.stderr.write(`listening for payment requests to ${loaded.wallet.credential_id} (Ctrl-C to stop)\n`);
      for await (const request of pushedRequests(io, client, loaded.wallet.auth_base_url, abort.signal)) {
        if (seen.has(request.view.rid)) continue; // pushed again after a reconnection
        remember(seen, request.view.rid);
        try {
          const ended = await answer(io, client, loaded, request, options, pin);
          if (options.once) process.exitCode = outcomeExitCodes[ended];
        } catch (err) {
          // A long-running listener reports a request that failed (expired, answered elsewhere) and waits for the next.
          if (options.once || !(err instanceof KessaiError)) throw err;
          io.stderr.write(`kessai wallet: ${oneLine(err.message)} (${err.code})\n`);
        }
        if (options.once) return;
      }
    } finally {
      abort.abort();
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
    }
  });
}

/** Step 403 over server-sent events, reconnecting (with doubling pauses) when the stream drops. */
async function* pushedRequests(io: WalletIo, client: WalletClient, authBaseUrl: string, signal: AbortSignal): AsyncGenerator<VerifiedRequest> {
  let failures = 0;
  for (;;) {
    try {
      for await (const request of client.listen(signal)) {
        failures = 0;
        yield request;
      }
    } catch (err) {
      if (signal.aborted) return;
      if (!isTransient(err)) throw err;
    }
    if (signal.aborted) return;
    if (++failures > listenReconnectsMax) throw new KessaiError('issuer_unavailable', `lost the event stream from ${authBaseUrl} ${listenReconnectsMax} times in a row`);
    const delayMs = listenReconnectDelayMsFirst * 2 ** (failures - 1);
    io.stderr.write(`event stream from ${authBaseUrl} closed; reconnecting in ${delayMs / 1000}s\n`);
    await sleep(delayMs, signal);
  }
}

/** The server or the network went away: worth reconnecting. A refusal (revoked, bad signature) is not. */
function isTransient(err: unknown): boolean {
  if (err instanceof KessaiError) return err.code === 'issuer_unavailable';
  if (err instanceof undiciErrors.UndiciError) return true;
  return err instanceof Error && typeof (err as NodeJS.ErrnoException).errno === 'number';
}

async function pay(io: WalletIo, idOrLink: string, options: PayOptions): Promise<void> {
  const loaded = await loadWallet(options.storage);
  const id = requestIdOf(idOrLink);
  const pin = pinSource(io, options);
  await withClient(loaded, async (client) => {
    const request = await client.fetchRequest(id);
    // A link opened twice: say what became of it rather than ask for the PIN again.
    const current = await client.outcome(id);
    if (current.status !== 'pending') throw new KessaiError('payment_request_not_pending', `payment request ${id} is already ${current.status}${current.decline_code ? ` (${current.decline_code})` : ''}`);
    process.exitCode = outcomeExitCodes[await answer(io, client, loaded, request, options, pin)];
  });
}

/** How an answered request ended, for the exit code of `pay` and `listen --once` (documented in README.md). */
export type AnswerEnd = 'paid' | 'declined' | 'payer_declined' | 'left_pending' | 'not_known_yet';

export const outcomeExitCodes: Readonly<Record<AnswerEnd, number>> = Object.freeze({
  paid: 0,
  /** The issuer declined, or a wrong PIN that could not be asked again (the request stays payable). */
  declined: 3,
  payer_declined: 4,
  /** The payer chose not to answer now: the request is still pending and can be paid later. */
  left_pending: 5,
  /** In doubt: the bank's answer was lost and is being checked. */
  not_known_yet: 6,
});

function endOf(outcome: TerminalOutcome): AnswerEnd {
  if (outcome.status === 'approved' || outcome.status === 'captured') return 'paid';
  if (outcome.status === 'authorizing') return 'not_known_yet';
  if (outcome.status === 'cancelled' && outcome.decline_code === 'payer_declined') return 'payer_declined';
  return 'declined';
}

/**
 * Shows the verified request, asks, and answers it: steps 403 (what the payer sees) and 404. A
 * wrong PIN with tries left leaves the request payable: the PIN is asked again at the terminal
 * (from the environment it is not: the request is reported still payable).
 */
async function answer(io: WalletIo, client: WalletClient, loaded: LoadedWallet, request: VerifiedRequest, options: PayOptions, pin: PinSource): Promise<AnswerEnd> {
  const { view } = request;
  const total = shownTotal(view);
  showRequest(io, view, total);
  if (Date.parse(view.expires_at) <= Date.now()) throw new KessaiError('payment_request_expired', `payment request ${view.rid} expired at ${view.expires_at}`);

  if (options.yes !== true && !(await askConfirm(io, `Pay ${total} to ${printable(view.merchant.name)}?`))) {
    // No at the prompt (Enter's default) declines nothing by itself: the payer chooses.
    if (!(await askDecline(io))) {
      lines(io.stdout)(`not answered: ${view.rid} — still payable; pay it later with: kessai wallet pay ${view.rid} --storage <your wallet folder>`);
      return 'left_pending';
    }
    const declined = await client.decline(request);
    printOutcome(io, view, total, declined);
    return endOf(declined);
  }
  for (;;) {
    const outcome = await client.approve(request, (await pin.next()).expose());
    if (outcome.sealed_credential !== undefined) {
      await replaceSealedCredential(loaded.dir, outcome.sealed_credential);
      io.stderr.write('the credential was re-sealed under the current key (key rotation); the storage now holds the new one\n');
    }
    if (outcome.status === 'pending' && outcome.pin_tries_left !== undefined) {
      const tries = `${outcome.pin_tries_left} ${outcome.pin_tries_left === 1 ? 'try' : 'tries'} left before the card locks`;
      if (pin.interactive) {
        io.stderr.write(`wrong PIN (pin_incorrect): ${tries}; enter it again, or Ctrl-C to stop (the request stays payable)\n`);
        continue;
      }
      lines(io.stdout)(`wrong PIN: ${view.rid} — ${tries}; the request is still payable (pin_incorrect)`);
      return 'declined';
    }
    printOutcome(io, view, total, outcome, await issuerSignature(client, loaded, view, outcome));
    return endOf(outcome);
  }
}

function showRequest(io: WalletIo, view: TerminalRequestPayload, total: string): void {
  const out = lines(io.stdout);
  const currency = currencyOf(view);
  const rows = view.line_items.map((item) => ({
    what: `${item.quantity} × ${printable(item.description)}`,
    unit: formatAmount(BigInt(item.unit_price_minor), currency),
    sum: formatAmount(BigInt(item.quantity) * BigInt(item.unit_price_minor), currency),
  }));
  const whatWidth = Math.max(...rows.map((row) => row.what.length));
  const unitWidth = Math.max(...rows.map((row) => row.unit.length));
  const sumWidth = Math.max(total.length, ...rows.map((row) => row.sum.length));
  // The mode is signed with the rest: a test request pays only with a test card, and moves no real money.
  if (!view.livemode) out('TEST — a test-mode payment request: only a test card pays it');
  out(`payment request ${view.rid} from ${printable(view.merchant.name)} (signed by the authentication server)`);
  for (const row of rows) out(`  ${row.what.padEnd(whatWidth)}  at ${row.unit.padStart(unitWidth)}  = ${row.sum.padStart(sumWidth)}`);
  out(`  ${'total'.padEnd(whatWidth + unitWidth + 9)}${total.padStart(sumWidth)}`);
  out(`  order ${printable(view.order_id)}, expires ${view.expires_at}`);
}

/** Merchant text reaches the payer's terminal: no control or bidi characters that could redraw the total. */
export function printable(text: string): string {
  return safeDisplay(text);
}

/** The total, checked against the items: the payer is never shown a total the items do not add up to. */
function shownTotal(view: TerminalRequestPayload): string {
  const amount = BigInt(view.amount_minor);
  if (lineItemsTotal(view.line_items) !== amount) throw new KessaiError('amount_mismatch', `payment request ${view.rid}: the total is not the sum of the items`);
  return formatAmount(amount, currencyOf(view));
}

function currencyOf(view: TerminalRequestPayload) {
  // terminalRequestPayload's schema admits only known currencies: anything else is a bug here.
  if (!isCurrency(view.currency)) throw new TypeError(`payment request ${view.rid} is in an unknown currency`);
  return view.currency;
}

function printOutcome(io: WalletIo, view: TerminalRequestPayload, total: string, outcome: TerminalOutcome, signature?: string): void {
  const out = lines(io.stdout);
  if (outcome.status === 'approved' || outcome.status === 'captured') {
    out(`approved: ${view.rid} — ${total} to ${printable(view.merchant.name)}${signature ? ` (${signature})` : ''}`);
  } else if (outcome.status === 'authorizing') {
    // The issuer's answer was lost and is still being checked (in doubt): not "not paid".
    out(`not known yet: ${view.rid} — the bank's answer was lost and is being checked; do not pay again. see the outcome later with: kessai wallet status ${view.rid} --storage <your wallet folder>`);
  } else if (outcome.status === 'cancelled' && outcome.decline_code === 'payer_declined') {
    out(`declined: ${view.rid} — you declined (payer_declined)`);
  } else {
    out(`${outcome.status === 'declined' ? 'declined' : outcome.status}: ${view.rid}${describeDecline(outcome.decline_code)}`);
  }
}

function describeDecline(code: string | null): string {
  if (code === null) return '';
  const reason = Object.hasOwn(declineCatalog, code) ? declineCatalog[code as keyof typeof declineCatalog] : undefined;
  return reason ? ` — ${reason} (${code})` : ` (${code})`;
}

/**
 * The wallet checks the issuer's own signature on the authorization, with the issuer's key from
 * the signed directory (step 408). The payment is already approved by then, so a failed check is
 * reported beside it, never thrown.
 */
async function issuerSignature(client: WalletClient, loaded: LoadedWallet, view: TerminalRequestPayload, outcome: TerminalOutcome): Promise<string | undefined> {
  if (outcome.status !== 'approved' || !outcome.authorization) return undefined;
  try {
    const payload = await client.verifyAuthorization(outcome.authorization, view);
    return `authorization ${payload.aid}, signed by ${loaded.wallet.issuer.name}`;
  } catch (err) {
    return `the issuer's signature could not be checked: ${err instanceof Error ? oneLine(err.message) : 'unknown error'}`;
  }
}

// ---- status (step 408) ------------------------------------------------------------------------

async function status(io: WalletIo, requestId: string | undefined, options: { storage: string }): Promise<void> {
  const loaded = await loadWallet(options.storage);
  const { wallet } = loaded;
  const out = lines(io.stdout);
  if (requestId === undefined) {
    out(`credential: ${wallet.credential_id}`);
    out(`issuer: ${wallet.issuer.name} (${wallet.issuer.id})`);
    out(`conversion mode: ${modeDescriptions[wallet.issuer.conversion_mode]}`);
    out(`authentication server: ${wallet.auth_base_url}`);
    out(`storage: ${loaded.dir}`);
    return;
  }
  const id = requestIdOf(requestId);
  await withClient(loaded, async (client) => {
    const outcome = await client.outcome(id);
    out(`${outcome.id}: ${outcome.status}${describeDecline(outcome.decline_code)}`);
  });
}

// ---- helpers -------------------------------------------------------------------------------------

async function withClient(loaded: LoadedWallet, use: (client: WalletClient) => Promise<void>): Promise<void> {
  const client = new WalletClient(loaded.wallet, { caCertPem: loaded.caCertPem });
  try {
    await use(client);
  } finally {
    await client.close();
  }
}

/** A payment request id, or the id at the end of a payment link. */
function requestIdOf(idOrLink: string): string {
  const trimmed = idOrLink.trim();
  let last = trimmed;
  if (/^https?:\/\//.test(trimmed)) {
    try {
      last = new URL(trimmed).pathname.replace(/\/+$/, '').split('/').pop() ?? '';
    } catch {
      last = '';
    }
  }
  if (!idPattern('pr').test(last)) throw new WalletCliError('input_invalid', `${trimmed.slice(0, 80)} is not a payment request id (pr_…) or payment link`);
  return last;
}

/** Where each PIN comes from; `interactive` when it can be asked again after a wrong one. */
interface PinSource {
  interactive: boolean;
  next: () => Promise<Secret<string>>;
}

/** Where the PIN comes from: the environment (automation) or a password prompt on the terminal. */
function pinSource(io: WalletIo, options: { pinFromEnv?: string | undefined }): PinSource {
  const checkPin = (value: string | undefined) => (/^[0-9]{4,12}$/.test(value ?? '') ? undefined : 'a PIN is 4 to 12 digits');
  if (options.pinFromEnv !== undefined) {
    const value = io.env[options.pinFromEnv];
    if (value === undefined || value === '') throw new WalletCliError('input_required', `environment variable ${options.pinFromEnv} (--pin-from-env) is not set`);
    if (checkPin(value)) throw new KessaiError('validation_failed', `the PIN in ${options.pinFromEnv} is not 4 to 12 digits`);
    return { interactive: false, next: async () => new Secret(value) };
  }
  if (!io.stdin.isTTY) throw new WalletCliError('input_required', 'no terminal to ask for the PIN — run in a terminal, or pass --pin-from-env VAR (automation)');
  return { interactive: true, next: async () => new Secret(await ask(io, 'password', 'PIN', checkPin, 'pass --pin-from-env')) };
}

/** One prompt on the terminal; refuses when there is none, rather than hang on a pipe. */
async function ask(io: WalletIo, kind: 'text' | 'password', message: string, validate: (value: string | undefined) => string | undefined, instead: string): Promise<string> {
  if (!io.stdin.isTTY) throw new WalletCliError('input_required', `no terminal to ask for "${message}" — ${instead}`);
  const common = { message, validate, input: io.stdin, output: io.stderr };
  const value = kind === 'password' ? await prompts.password(common) : await prompts.text(common);
  if (prompts.isCancel(value)) throw new WalletCliError('cancelled', 'cancelled at the prompt; nothing was sent');
  return value;
}

async function askConfirm(io: WalletIo, message: string): Promise<boolean> {
  if (!io.stdin.isTTY) throw new WalletCliError('input_required', 'no terminal to confirm the payment — run in a terminal, or pass --yes (automation)');
  const value = await prompts.confirm({ message, initialValue: false, input: io.stdin, output: io.stderr });
  if (prompts.isCancel(value)) throw new WalletCliError('cancelled', 'cancelled at the prompt; the request is still pending');
  return value;
}

/** After a no at "Pay?": leave the request for later (the default) or decline it, which tells the shop. */
async function askDecline(io: WalletIo): Promise<boolean> {
  const value = await prompts.select({
    message: 'Not paying now. Decline the request? (the shop is told; it cannot be paid afterwards)',
    options: [
      { value: 'leave', label: 'No — leave it payable for later' },
      { value: 'decline', label: 'Yes — decline it' },
    ],
    initialValue: 'leave',
    input: io.stdin,
    output: io.stderr,
  });
  if (prompts.isCancel(value)) throw new WalletCliError('cancelled', 'cancelled at the prompt; the request is still pending');
  return value === 'decline';
}

function remember(seen: Set<string>, rid: string): void {
  seen.add(rid);
  if (seen.size > seenRequestsMax) seen.delete(seen.values().next().value as string);
}

function lines(stream: Writable): (line: string) => void {
  return (line) => stream.write(`${line}\n`);
}

function oneLine(message: string): string {
  return message.replace(/\s*\n\s*/g, ' ').trim();
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
  });
}
