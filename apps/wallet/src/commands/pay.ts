/**
 * `kessai wallet pay` (steps 403–404, by payment link): one payment request, shown from the
 * authentication server's signed view, confirmed, and answered with the device key and the PIN;
 * `listen` answers pushed requests the same way (answer()).
 */
import type { Command } from 'commander';
import * as prompts from '@clack/prompts';
import {
  formatAmount,
  isCurrency,
  KessaiError,
  lineItemsTotal,
  safeDisplay,
  type TerminalOutcome,
  type TerminalRequestPayload,
} from '@kessai/protocol';
import { WalletClient, type VerifiedRequest } from '@kessai/sdk';
import { loadWallet, replaceSealedCredential, type LoadedWallet } from '../storage.ts';
import {
  automationNote,
  describeDecline,
  lines,
  oneLine,
  pinSource,
  requestIdOf,
  run,
  WalletCliError,
  withClient,
  type PinSource,
  type WalletIo,
} from './common.ts';

export interface PayOptions {
  storage: string;
  pinFromEnv?: string;
  yes?: boolean;
}

export function registerPay(wallet: Command, io: WalletIo): void {
  wallet
    .command('pay')
    .description('open one payment request by id or payment link and answer it')
    .argument('<id-or-link>', 'payment request id (pr_…) or payment link')
    .requiredOption('--storage <dir>', 'the removable storage folder')
    .option('--pin-from-env <var>', 'read the PIN from this environment variable (automation only)')
    .option('--yes', 'approve without asking (automation only)')
    .addHelpText('after', `\n${automationNote}`)
    .action(run((idOrLink: string, options: PayOptions) => pay(io, idOrLink, options)));
}

async function pay(io: WalletIo, idOrLink: string, options: PayOptions): Promise<void> {
  const loaded = await loadWallet(options.storage);
  const id = requestIdOf(idOrLink);
  const pin = pinSource(io, options);
  await withClient(loaded, async (client) => {
    const request = await client.fetchRequest(id);
    // A link opened twice: say what became of it rather than ask for the PIN again.
    const current = await client.outcome(id);
    if (current.status !== 'pending')
      throw new KessaiError(
        'payment_request_not_pending',
        `payment request ${id} is already ${current.status}${current.decline_code ? ` (${current.decline_code})` : ''}`,
      );
    process.exitCode = outcomeExitCodes[await answer(io, client, loaded, request, { options, pin })];
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
export async function answer(
  io: WalletIo,
  client: WalletClient,
  loaded: LoadedWallet,
  request: VerifiedRequest,
  how: { options: PayOptions; pin: PinSource },
): Promise<AnswerEnd> {
  const { options, pin } = how;
  const { view } = request;
  const total = shownTotal(view);
  showRequest(io, view, total);
  if (Date.parse(view.expires_at) <= Date.now())
    throw new KessaiError('payment_request_expired', `payment request ${view.rid} expired at ${view.expires_at}`);

  if (options.yes !== true && !(await askConfirm(io, `Pay ${total} to ${printable(view.merchant.name)}?`))) {
    // No at the prompt (Enter's default) declines nothing by itself: the payer chooses.
    if (!(await askDecline(io))) {
      lines(io.stdout)(
        `not answered: ${view.rid} — still payable; ` +
          `pay it later with: kessai wallet pay ${view.rid} --storage <your wallet folder>`,
      );
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
      io.stderr.write(
        'the credential was re-sealed under the current key (key rotation); the storage now holds the new one\n',
      );
    }
    if (outcome.status === 'pending' && outcome.pin_tries_left !== undefined) {
      const triesWord = outcome.pin_tries_left === 1 ? 'try' : 'tries';
      const tries = `${outcome.pin_tries_left} ${triesWord} left before the card locks`;
      if (pin.interactive) {
        io.stderr.write(
          `wrong PIN (pin_incorrect): ${tries}; enter it again, or Ctrl-C to stop (the request stays payable)\n`,
        );
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
  for (const row of rows)
    out(`  ${row.what.padEnd(whatWidth)}  at ${row.unit.padStart(unitWidth)}  = ${row.sum.padStart(sumWidth)}`);
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
  if (lineItemsTotal(view.line_items) !== amount)
    throw new KessaiError('amount_mismatch', `payment request ${view.rid}: the total is not the sum of the items`);
  return formatAmount(amount, currencyOf(view));
}

function currencyOf(view: TerminalRequestPayload) {
  // terminalRequestPayload's schema admits only known currencies: anything else is a bug here.
  if (!isCurrency(view.currency)) throw new TypeError(`payment request ${view.rid} is in an unknown currency`);
  return view.currency;
}

function printOutcome(
  io: WalletIo,
  view: TerminalRequestPayload,
  total: string,
  outcome: TerminalOutcome,
  signature?: string,
): void {
  const out = lines(io.stdout);
  if (outcome.status === 'approved' || outcome.status === 'captured') {
    out(`approved: ${view.rid} — ${total} to ${printable(view.merchant.name)}${signature ? ` (${signature})` : ''}`);
  } else if (outcome.status === 'authorizing') {
    // The issuer's answer was lost and is still being checked (in doubt): not "not paid".
    out(
      `not known yet: ${view.rid} — the bank's answer was lost and is being checked; do not pay again. ` +
        `see the outcome later with: kessai wallet status ${view.rid} --storage <your wallet folder>`,
    );
  } else if (outcome.status === 'cancelled' && outcome.decline_code === 'payer_declined') {
    out(`declined: ${view.rid} — you declined (payer_declined)`);
  } else {
    const ended = outcome.status === 'declined' ? 'declined' : outcome.status;
    out(`${ended}: ${view.rid}${describeDecline(outcome.decline_code)}`);
  }
}

/**
 * The wallet checks the issuer's own signature on the authorization, with the issuer's key from
 * the signed directory (step 408). The payment is already approved by then, so a failed check is
 * reported beside it, never thrown.
 */
async function issuerSignature(
  client: WalletClient,
  loaded: LoadedWallet,
  view: TerminalRequestPayload,
  outcome: TerminalOutcome,
): Promise<string | undefined> {
  if (outcome.status !== 'approved' || !outcome.authorization) return undefined;
  try {
    const payload = await client.verifyAuthorization(outcome.authorization, view);
    return `authorization ${payload.aid}, signed by ${loaded.wallet.issuer.name}`;
  } catch (err) {
    const why = err instanceof Error ? oneLine(err.message) : 'unknown error';
    return `the issuer's signature could not be checked: ${why}`;
  }
}
async function askConfirm(io: WalletIo, message: string): Promise<boolean> {
  if (!io.stdin.isTTY)
    throw new WalletCliError(
      'input_required',
      'no terminal to confirm the payment — run in a terminal, or pass --yes (automation)',
    );
  const value = await prompts.confirm({ message, initialValue: false, input: io.stdin, output: io.stderr });
  if (prompts.isCancel(value))
    throw new WalletCliError('cancelled', 'cancelled at the prompt; the request is still pending');
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
  if (prompts.isCancel(value))
    throw new WalletCliError('cancelled', 'cancelled at the prompt; the request is still pending');
  return value === 'decline';
}
