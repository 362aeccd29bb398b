/**
 * `kessai wallet status`: the wallet on the storage — its credential, the card's last four digits
 * (kept on the storage at enrollment; "unknown" for a wallet enrolled before), the issuer as the
 * signed directory named it — and the credential's state, asked of the authentication server with
 * the device proof: active (with the PIN tries left), locked, blocked or revoked. The card never
 * leaves the storage: the server answers for the credential id alone. With a request id: that
 * payment request's final state (step 408).
 */
import type { Command } from 'commander';
import { declineCatalog, errorCatalog, type TerminalCredentialStatus } from '@kessai/protocol';
import { loadWallet, type LoadedWallet } from '../storage.ts';
import { describeDecline, lines, modeDescriptions, requestIdOf, run, withClient, type WalletIo } from './common.ts';

interface StatusOptions {
  storage: string;
  offline?: boolean;
}

export function registerStatus(wallet: Command, io: WalletIo): void {
  wallet
    .command('status')
    .description(
      'show the wallet on the storage and whether its credential is active, locked or revoked, ' +
        "or a payment request's final state (step 408)",
    )
    .argument('[request-id]', 'payment request id (pr_…) or payment link')
    .requiredOption('--storage <dir>', 'the removable storage folder')
    .option('--offline', 'show what the storage holds without asking the authentication server')
    .action(run((requestId: string | undefined, options: StatusOptions) => status(io, requestId, options)));
}

async function status(io: WalletIo, requestId: string | undefined, options: StatusOptions): Promise<void> {
  const loaded = await loadWallet(options.storage);
  const out = lines(io.stdout);
  if (requestId === undefined) {
    showWallet(io, loaded);
    if (options.offline) {
      out('status: not asked (--offline)');
      return;
    }
    await withClient(loaded, async (client) => out(`status: ${describeState(await client.credentialStatus())}`));
    return;
  }
  const id = requestIdOf(requestId);
  await withClient(loaded, async (client) => {
    const outcome = await client.outcome(id);
    out(`${outcome.id}: ${outcome.status}${describeDecline(outcome.decline_code)}`);
  });
}

/** What the storage holds, one `name: value` line each, in this order (README.md shows it). */
function showWallet(io: WalletIo, loaded: LoadedWallet): void {
  const { wallet } = loaded;
  const out = lines(io.stdout);
  out(`credential: ${wallet.credential_id}`);
  const unknownCard = 'unknown (enrolled before the wallet kept the last four digits)';
  out(`card: ${wallet.card_last4 ? `ending ${wallet.card_last4}` : unknownCard}`);
  out(`issuer: ${wallet.issuer.name} (${wallet.issuer.id})`);
  out(`conversion mode: ${modeDescriptions[wallet.issuer.conversion_mode]}`);
  out(`authentication server: ${wallet.auth_base_url}`);
  out(`storage: ${loaded.dir}`);
}

function describeState(state: TerminalCredentialStatus): string {
  if (state.status === 'active') {
    const tries = state.pin_tries_left ?? 0;
    return `active — ${tries} wrong ${tries === 1 ? 'PIN' : 'PINs'} allowed before a lock`;
  }
  const code = state.code ?? 'credential_revoked';
  const reason =
    code === 'credential_revoked' ? `${errorCatalog[code].title}; every use of it is refused` : declineCatalog[code];
  return `${state.status} — ${reason} (${code})`;
}
