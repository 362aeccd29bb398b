/**
 * `kessai serve <auth|settlement|shop|wallet-host>`: one role as one OS process, configured from
 * `KESSAI_*` variables over an optional file (docs/operations.md, "Configuration"). An invalid or
 * missing value exits 2 with a message naming the variable; once listening it prints one JSON line
 * `{"listening":"https://…","pid":…}` on stdout; SIGTERM or SIGINT closes it.
 */
import { serveUntilSignalled, type Logger } from '@kessai/service';
import { ConfigError, loadRoleConfig } from './loader.ts';
import { resolveAuth, resolveSettlement, resolveShop, resolveWalletHost } from './resolve.ts';
import { serveAuth, serveSettlement, serveShop, serveWalletHost, type Served } from './roles.ts';
import { authSchema, serveRoles, settlementSchema, shopSchema, walletHostSchema, type ServeRole } from './schemas.ts';

export { ConfigError, envName, loadRoleConfig, type RoleSchema } from './loader.ts';
export * from './roles.ts';
export * from './resolve.ts';
export * from './schemas.ts';

/** Validates the role's configuration from `env` and starts it; throws a ConfigError for a bad configuration. */
export async function serveFromEnv(role: ServeRole, env: Readonly<Record<string, string | undefined>>): Promise<{ served: Served<unknown>; logger: Logger }> {
  switch (role) {
    case 'auth': {
      const config = await resolveAuth(await loadRoleConfig(authSchema, env));
      return { served: await serveAuth(config), logger: config.logger };
    }
    case 'settlement': {
      const config = await resolveSettlement(await loadRoleConfig(settlementSchema, env));
      return { served: await serveSettlement(config), logger: config.logger };
    }
    case 'shop': {
      const config = await resolveShop(await loadRoleConfig(shopSchema, env));
      return { served: await serveShop(config), logger: config.logger };
    }
    case 'wallet-host': {
      const config = await resolveWalletHost(await loadRoleConfig(walletHostSchema, env));
      return { served: await serveWalletHost(config), logger: config.logger };
    }
  }
}

/** The command: exits 2 on a bad configuration (the message names the variable, never a value). */
export async function serveCommand(role: string, env: Readonly<Record<string, string | undefined>>): Promise<void> {
  if (!(serveRoles as readonly string[]).includes(role)) {
    console.error(`kessai serve: unknown role ${JSON.stringify(role)} (one of ${serveRoles.join(', ')})`);
    process.exit(2);
  }
  let started: Awaited<ReturnType<typeof serveFromEnv>>;
  try {
    started = await serveFromEnv(role as ServeRole, env);
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`kessai serve ${role}: ${err.message}`);
      process.exit(2);
    }
    throw err;
  }
  serveUntilSignalled(started.served.url, { app: { close: () => started.served.close() }, logger: started.logger });
}
