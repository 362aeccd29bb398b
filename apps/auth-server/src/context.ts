/** What the routes of the authentication server share, built once by app.ts. */
import type { HttpClient } from '@kessai/sdk';
import type { AuthConfig } from './config.ts';
import type { IssuerDirectory } from './issuers.ts';
import type { PushHub } from './push.ts';

export interface AuthContext {
  config: AuthConfig;
  issuers: IssuerDirectory;
  /** Mutual-TLS client to the settlement servers. */
  http: HttpClient;
  hub: PushHub;
}
