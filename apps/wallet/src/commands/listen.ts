/**
 * `kessai wallet listen` (step 403, push): waits for the payment requests pushed to this wallet and
 * answers each as `pay` does, reconnecting (with doubling pauses) when the event stream drops.
 */
import type { Command } from 'commander';
import { errors as undiciErrors } from 'undici';
import { KessaiError, limits } from '@kessai/protocol';
import { WalletClient, type VerifiedRequest } from '@kessai/sdk';
import { loadWallet } from '../storage.ts';
import { automationNote, oneLine, pinSource, run, withClient, type WalletIo } from './common.ts';
import { answer, outcomeExitCodes, type PayOptions } from './pay.ts';

/** Consecutive reconnections of `listen` after the event stream drops, and the first pause (doubling). */
export const listenReconnectsMax = limits.walletListenReconnectsMax;
export const listenReconnectDelayMsFirst = limits.walletListenReconnectDelayMsFirst;
/** Request ids `listen` remembers, so a request pushed twice is shown once. */
const seenRequestsMax = limits.walletListenSeenRequestsMax;

export function registerListen(wallet: Command, io: WalletIo): void {
  wallet
    .command('listen')
    .description('wait for payment requests pushed to this wallet (step 403) and answer each')
    .requiredOption('--storage <dir>', 'the removable storage folder')
    .option('--once', 'stop after one request')
    .option('--pin-from-env <var>', 'read the PIN from this environment variable (automation only)')
    .option('--yes', 'approve without asking (automation only)')
    .addHelpText('after', `\n${automationNote}`)
    .action(run((options: PayOptions & { once?: boolean }) => listen(io, options)));
}

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
          const ended = await answer(io, client, loaded, request, { options, pin });
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
async function* pushedRequests(
  io: WalletIo,
  client: WalletClient,
  authBaseUrl: string,
  signal: AbortSignal,
): AsyncGenerator<VerifiedRequest> {
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
    if (++failures > listenReconnectsMax)
      throw new KessaiError(
        'issuer_unavailable',
        `lost the event stream from ${authBaseUrl} ${listenReconnectsMax} times in a row`,
      );
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

function remember(seen: Set<string>, rid: string): void {
  seen.add(rid);
  if (seen.size > seenRequestsMax) seen.delete(seen.values().next().value as string);
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
