import { assert } from './assert.ts';

/**
 * Every limit of the protocol and the servers, named once. Each is enforced where the input
 * arrives; the integration suites (test/*.test.ts) cross them.
 */
export const limits = {
  /** Largest JSON body any Kessai server reads. */
  bodyBytesMax: 64 * 1024,
  /** Deepest nesting of objects and arrays in a JSON body or protocol payload (the deepest message needs 3). */
  jsonDepthMax: 16,
  /** Longest string field that has no tighter limit of its own. */
  stringLengthMax: 200,
  holderNameLengthMax: 64,
  orderIdLengthMax: 64,
  idempotencyKeyLengthMax: 255,
  /** Longest compact JWS/JWE accepted in a body or header. */
  joseLengthMax: 16 * 1024,
  lineItemsMax: 100,
  quantityMax: 10_000,
  /** Largest amount in minor units: 10^15 (a quadrillion yen; fits in PostgreSQL bigint with room for sums). */
  amountMinorMax: 1_000_000_000_000_000n,
  /**
   * Largest amount of one ledger transfer (apps/settlement-server/src/ledger/rules.ts answers
   * amount_exceeds_maximum past it): above amountMinorMax, because a settlement batch's payout
   * sums a business day of captures; far below ledgerBalanceMax.
   */
  ledgerAmountMax: 1_000_000_000_000_000_000n,
  /**
   * Largest value of a ledger balance column, and of its pending and posted together: PostgreSQL bigint (2^63 − 1);
   * past it the rules answer overflows_*.
   */
  ledgerBalanceMax: 9_223_372_036_854_775_807n,
  /** Payment requests live this long unless the merchant asks for less. */
  paymentRequestTtlMsDefault: 15 * 60 * 1000,
  paymentRequestTtlMsMax: 60 * 60 * 1000,
  paymentRequestTtlMsMin: 10 * 1000,
  /** An approval older than this is refused even if its request is still pending. */
  approvalAgeMsMax: 5 * 60 * 1000,
  /** Allowed clock difference for iat claims (approvals, device proofs). */
  clockSkewMs: 60 * 1000,
  /** Device proofs (signed terminal requests) are valid this long. */
  deviceProofAgeMsMax: 2 * 60 * 1000,
  /** Wrong PINs before the card is locked. */
  pinAttemptsMax: 3,
  /** Wrong PINs through one credential (device key) before that credential is locked at the issuer; only a right PIN through it resets the count. */
  pinAttemptsPerCredentialMax: 3,
  /**
   * Wrong PINs of one card within pinFailuresWindowMs, across operator unlocks (the velocity
   * record): past it every PIN of the card is declined pin_locked, unchecked, until the window
   * passes — so an unlock after every second miss cannot turn into an online PIN search.
   */
  pinFailuresWindowMax: 6,
  pinFailuresWindowMs: 24 * 60 * 60 * 1000,
  /** Active credentials (enrolled devices) one card may have at its issuer. */
  credentialsPerCardMax: 5,
  /** The signed directory: issuers listed, card ranges and keys per issuer. */
  directoryIssuersMax: 50,
  directoryCardRangesMax: 50,
  directoryKeysPerIssuerMax: 10,
  /**
   * Wrong recovery codes for one credential from one source address before revocation by recovery
   * code is locked from that address, and for how long (a stranger who knows the wallet handle
   * locks out only their own address; an address quiet this long starts again).
   */
  recoveryAttemptsMax: 5,
  recoveryLockoutMs: 15 * 60 * 1000,
  /**
   * Wrong recovery codes for one credential from all addresses together before it is locked for
   * everyone for recoveryLockoutMs: bounds distributed guessing (hopeless anyway against 100 bits)
   * and the argon2 work one credential can cost, while locking the payer out takes this many
   * addresses' worth of wrong codes (40 × recoveryAttemptsMax).
   */
  recoveryAttemptsPerCredentialMax: 200,
  /** The authentication server fetches an issuer's JWKS again for an unknown signing kid (a rotated key) at most this often. */
  issuerJwksRefetchCooldownMs: 1_000,
  /** Each server reads its key files again this often, so a rotation made through another process sharing them takes effect. */
  keyReloadIntervalMs: 5_000,
  /** Calls from one server to another give up after this long. */
  upstreamTimeoutMs: 10_000,
  /**
   * The broker's deadline for an authorization at the issuer (step 406), sent downstream as
   * Kessai-Deadline-Ms: the issuer places no hold once it has passed, and the broker, having
   * waited this long, leaves the request in doubt (`authorizing`) for the in-doubt worker.
   */
  authorizationDeadlineMs: 8_000,
  /** The in-doubt worker first asks the issuer about an authorizing request this long after its deadline (a crashed broker's request is found then). */
  inDoubtFirstCheckMs: 1_000,
  /** Back-off between its inquiries while the issuer cannot be reached: doubling from inDoubtFirstCheckMs up to this. */
  inDoubtRetryMsMax: 10_000,
  /** In-doubt requests resolved per worker pass. */
  inDoubtBatchMax: 50,
  /** How long a worker's claim on an in-doubt request keeps other broker processes off it (longer than an inquiry and a reversal take together). */
  inDoubtClaimMs: 30_000,
  /**
   * The bound of docs/operations.md, "Failure semantics": once a fault has cleared, every
   * authorization in doubt is resolved, every hold the broker expires is released, and broker,
   * bank and shop agree on every payment within this time (the chaos test checks it).
   */
  convergenceMs: 60_000,
  /**
   * How long the wallet waits for its approval's answer: longer than the broker's deadline at the
   * issuer, so a slow issuer is never reported as a failure the broker later records as paid.
   */
  walletApproveTimeoutMs: 20_000,
  /**
   * The authentication server saves an approval's intent only this soon after the approval
   * arrived; later it answers deadline_exceeded and does nothing. So a terminal that gave up after
   * walletApproveTimeoutMs knows that, from walletApproveTimeoutMs + approvalSaveWindowMs after it
   * sent the approval, a request still pending was not paid by it.
   */
  approvalSaveWindowMs: 10_000,
  /** After a lost or in-doubt answer, how long the wallet keeps asking for the request's outcome before it says "not known yet" (never "not paid"). */
  walletOutcomeWaitMs: 60_000,
  walletOutcomePollMs: 1_000,
  /**
   * Every server's PostgreSQL connections (packages/service/src/db.ts; PGlite is in-process and has
   * none of them). A new connection, or a free one from a full pool, not had within
   * dbConnectTimeoutMs fails the request with database_unavailable (503) instead of waiting.
   */
  dbConnectTimeoutMs: 2_000,
  /**
   * PostgreSQL cancels a statement (lock waits included) running longer than this (its
   * `statement_timeout`): well under upstreamTimeoutMs, so a caller hears database_unavailable
   * from us before it gives up on its own. The settlement close runs under it too.
   */
  dbStatementTimeoutMs: 5_000,
  /** A migration file's statements (packages/service/src/migrate.ts), which may rewrite a large table, run under this statement timeout instead. */
  dbMigrationTimeoutMs: 10 * 60 * 1000,
  /**
   * The client gives up on a statement whose answer has not arrived after this long and discards
   * the connection: catches a database (or network) that stalls without answering at all, which
   * statement_timeout cannot. A little longer than dbStatementTimeoutMs, so the server's own
   * cancellation normally comes first.
   */
  dbQueryTimeoutMs: 6_000,
  /** PostgreSQL ends a session left inside a transaction without a statement for this long (`idle_in_transaction_session_timeout`), releasing its locks. */
  dbIdleInTransactionTimeoutMs: 10_000,
  /** The LISTEN connection (push channel) runs `select 1` this often, so a connection that stalls without closing is noticed and reopened. */
  dbListenHeartbeatMs: 15_000,
  /** Retry-After (seconds) of a database_unavailable answer. */
  dbRetryAfterSeconds: 2,
  /**
   * Every server (packages/service/src/server.ts): a TLS handshake not finished after this long is
   * dropped (Node's default is 120 s, room for a slow-loris on the handshake).
   */
  tlsHandshakeMsMax: 10_000,
  /**
   * Every server: a connection with no bytes in either direction for this long is closed. Longer
   * than sseHeartbeatMs and upstreamTimeoutMs, or a quiet event stream or a request waiting on an
   * issuer would be cut.
   */
  connectionIdleMsMax: 30_000,
  /**
   * Every server: a request's head and body must have arrived this long after it began, or it is
   * answered request_timeout (408) and the connection closed: a body trickled in a byte at a time
   * holds no socket longer than this. The bodyBytesMax body arrives well within it.
   */
  requestTimeoutMs: 15_000,
  /** How often a server looks for requests past requestTimeoutMs (Node's default, 30 s, would let one run that much longer). */
  requestTimeoutCheckMs: 1_000,
  /** Every server: a kept-alive connection with no next request for this long is closed (announced in the Keep-Alive header). */
  keepAliveTimeoutMs: 5_000,
  /** Every HTTPS answer of every server carries `Strict-Transport-Security: max-age=` this (one year): a browser that once reached a server never tries it over plain HTTP. */
  hstsMaxAgeSeconds: 365 * 24 * 60 * 60,
  /**
   * Webhook delivery (apps/auth-server/src/webhooks.ts): the wait before each retry, after the
   * first attempt failed — 30 s, 2 min, 10 min, 30 min, 1 h, 2 h, 4 h, 8 h, 12 h, then 24 h three
   * times: 13 attempts over about 4 days 3 h 42 min (Stripe retries for 3 days), so a receiver down
   * for a weekend still gets every event. After the last, the event is dead (a dead letter) until
   * the operator or the merchant resends it. webhookAttemptsMax is this list's length plus one.
   */
  webhookRetryDelaysMs: [30_000, 120_000, 600_000, 1_800_000, 3_600_000, 7_200_000, 14_400_000, 28_800_000, 43_200_000, 86_400_000, 86_400_000, 86_400_000],
  webhookAttemptsMax: 13,
  webhookTimeoutMs: 5_000,
  /**
   * A delivery attempt holds its event this long (a lease): no other pass or process sends it
   * meanwhile, and a process that dies mid-delivery loses nothing — the event is due again when
   * the lease ends. Well above webhookTimeoutMs, so a slow receiver never gets the same event twice at once.
   */
  webhookLeaseMs: 30_000,
  /** Outbox rows delivered per poll. */
  webhookBatchMax: 20,
  /**
   * A successful webhook delivery is written with the next claim of events, or at most this long
   * after it (one statement for all of them): its lease keeps it from being sent again meanwhile.
   */
  webhookMarkDelayMs: 1_000,
  /** Webhook signatures older than this are refused by the receiver. */
  webhookToleranceMs: 5 * 60 * 1000,
  /** Idempotency keys are kept at least this long. */
  idempotencyKeyTtlMs: 24 * 60 * 60 * 1000,
  /**
   * The broker's worker deletes expired device proofs and idempotency keys at most this often, not
   * at every pass (two statements per pass otherwise; a row kept a few seconds past its expiry
   * changes nothing: an expired proof is refused by its age, and a key is kept *at least*
   * idempotencyKeyTtlMs).
   */
  brokerPurgeIntervalMs: 10_000,
  /**
   * The broker worker's slow poll (AuthConfig.workerIntervalMs when not set): one statement asks
   * which kinds of work are due by time (expiry, webhook retries, in-doubt, holds, revocations).
   * Webhook events queued by this process do not wait for it: their commit wakes the delivery; an
   * authorization this process left in doubt asks for a pass at its check time (worker.ts).
   */
  brokerWorkerIntervalMsDefault: 1_000,
  /**
   * Credentials whose device key (never changed for a credential id) the broker keeps imported per
   * process, so a device proof is verified before one statement spends it and reads the status.
   */
  deviceKeyCacheMax: 10_000,
  /**
   * A request running under an Idempotency-Key holds it for this long (a lease, `locked_until`),
   * renewed every third of it while the request still runs; a retry meanwhile is answered
   * idempotency_request_in_progress with Retry-After. A process that dies stops renewing: once the
   * lease ends a retry runs the request again (its saved work is found again).
   */
  idempotencyLeaseMs: 30 * 1000,
  /**
   * The shop's reconciler (apps/shop/src/reconciler.ts): an order still waiting (awaiting payment,
   * or paid and not captured) this long after its last change is asked about at the authentication
   * server — so a shop whose events were lost or dead-lettered converges; it asks again about the
   * same order no sooner than shopReconcileIntervalMs, and about at most shopReconcileBatchMax orders per pass.
   * Short enough that a shop back from an outage agrees with the broker within convergenceMs
   * (30 s + 15 s + a 10 s pass), whatever the webhook schedule's next attempt.
   */
  shopReconcileAfterMs: 30 * 1000,
  shopReconcileIntervalMs: 15 * 1000,
  shopReconcileBatchMax: 50,
  /** How often the shop's worker runs a reconciler pass. */
  shopWorkerIntervalMsDefault: 10_000,
  /** Webhook events returned by one list call (operator and merchant). */
  webhookEventsListMax: 100,
  /** Items returned by one page of a merchant list (payment requests, refunds, events); also the default. */
  merchantListMax: 100,
  /** Days an event stays answerable by `GET /v1/events`; older delivered or dead events are swept. */
  eventsRetentionDays: 30,
  /** Events one sweep pass removes at most (the worker runs again on its next tick). */
  eventsSweepBatchMax: 1_000,
  /** Open server-sent-event streams per credential and in all. */
  sseStreamsPerCredentialMax: 4,
  sseStreamsMax: 1_000,
  /** Open merchant event streams (`GET /v1/events/stream`, `kessai listen`) per merchant, per process. */
  eventStreamsPerMerchantMax: 4,
  /** How often a merchant event stream reads webhook_outbox for the merchant's new events. */
  eventStreamPollMs: 1_000,
  /** Events one poll of a merchant event stream sends at most (the rest come at the next poll). */
  eventStreamBatchMax: 100,
  /**
   * How far back each poll of an event stream looks again: an event whose transaction committed after
   * a later-stamped one was sent is still found within this window (the ids already sent are skipped).
   */
  eventStreamLookBackMs: 10_000,
  /**
   * Ids one event stream remembers for its look-back (about 40 bytes each): at most this many after
   * each poll. At the cap it forgets them and reads on only after its newest event (StreamTracker in
   * apps/auth-server/src/event-stream.ts): never a duplicate, but an event committed behind more
   * than this many newer ones is then not sent on that stream (still a webhook, still listed).
   */
  eventStreamSentIdsMax: 1_000,
  /** Keep-alive comment interval on event streams. */
  sseHeartbeatMs: 15_000,
  /** Payment requests returned by one list call. */
  listPageMax: 100,
  /**
   * Load shedding (packages/service/src/load-shedding.ts): requests each server works on at once
   * per work class; one more is answered `overloaded` (503, Retry-After overloadRetryAfterSeconds)
   * before any work. intake: what starts a new payment (the merchant's payment request, the shop's
   * cart and checkout), admitted only while intake and payment work together stay under its limit,
   * so new payments are refused before those already started; payment: approvals, capture, void,
   * refunds, enrollments, revocations, the bank's authorizations; read: GETs; admin: /admin;
   * control: what keeps payments consistent under load — the bank's reversal and status inquiry
   * (the broker's in-doubt worker and hold sync) and key documents. Small: a request admitted
   * beyond what the CPU and the database finish at once only waits inside the server; at the
   * benchmark's capacity (docs/benchmarks.md, "Overload") an admitted authorization finishes far
   * within authorizationDeadlineMs.
   */
  inFlightMax: { intake: 3, payment: 6, read: 24, admin: 4, control: 16 },
  overloadRetryAfterSeconds: 1,
  /** A request whose Kessai-Deadline-Ms leaves less than this is refused deadline_exceeded at once: its work could not finish before its caller gives up. */
  deadlineBudgetMsMin: 200,
  /** A handler still running when its client disconnected holds its in-flight slot until it answers, at most this long after the disconnect. */
  inFlightAbandonedMsMax: 30_000,
  /** While shedding, at most one warning per this interval, with the number refused since the last. */
  overloadLogIntervalMs: 10_000,
  /** Ledger jobs (holds, captures, voids, refunds, expiry passes) written per database transaction (group commit). */
  ledgerBatchSizeMax: 256,
  /** Ledger jobs waiting for their batch; beyond this the settlement server answers ledger_busy. */
  ledgerQueueDepthMax: 4_096,
  /** Runs of one batch when another server's batch raced it for a lock or an id. */
  ledgerBatchAttemptsMax: 3,
  /** An authorization hold that is neither captured nor voided is released after this long (card schemes: about 7 days). */
  holdTimeoutSecondsDefault: 7 * 24 * 60 * 60,
  /** The range a bank may choose its hold timeout in (the settlement server's `holdTimeoutSeconds`): at least a minute, at most 31 days. */
  holdTimeoutSecondsMin: 60,
  holdTimeoutSecondsMax: 31 * 24 * 60 * 60,
  /** How often the settlement server's expiry pass runs, and how many holds one pass releases. */
  expiryIntervalMsDefault: 10_000,
  expiryBatchMax: 500,
  /**
   * The authentication server's hold sync (apps/auth-server/src/hold-sync.ts): approved requests
   * asked about per worker pass; how long after its approval a request is first asked about (most
   * are captured before); how soon it asks again after an issuer did not answer; and how long it
   * waits before asking again about a request the issuer already resolved otherwise.
   */
  holdSyncBatchMax: 100,
  holdSyncFirstCheckMs: 1_000,
  holdSyncRetryMs: 5_000,
  holdSyncMismatchRecheckMs: 60 * 60 * 1000,
  /** Settlement batches returned by one list call (newest first). */
  settlementBatchesListMax: 100,
  /**
   * Settlement events (apps/auth-server/src/settlement-events.ts): the broker asks each issuer for
   * the batches it closed at most every settlementEventsPollMs (across all broker processes: the
   * issuer's cursor row is claimed for settlementEventsClaimMs, skip-locked), and reads at most
   * settlementEventsPageMax batches per ask (the next page at the next pass).
   */
  settlementEventsPollMs: 5_000,
  settlementEventsClaimMs: 60_000,
  settlementEventsPageMax: 20,
  /** How often the settlement worker checks whether the previous business day may be closed; 0 turns it off. */
  settlementWorkerIntervalMsDefault: 60_000,
  /** The worker closes a business day this long after it ended (late captures of other processes land first). */
  settlementCloseDelayMsDefault: 15 * 60 * 1000,
  /**
   * Rate limits (sustained requests per minute, burst from a full bucket), answered `rate_limited`
   * with Retry-After: per source address on every server; per merchant API key (merchant API); per
   * credential, i.e. per device (terminal API); and per source address on enrollment and on
   * credential recovery or revocation. Buckets are per process (packages/service/src/rate-limit.ts).
   */
  rateLimits: {
    address: { perMinute: 6_000, burst: 1_000 },
    merchant: { perMinute: 6_000, burst: 1_000 },
    credential: { perMinute: 600, burst: 120 },
    enrollment: { perMinute: 10, burst: 20 },
    recovery: { perMinute: 5, burst: 10 },
    /**
     * At the settlement server, whoever the caller: enrollments per card (keyed by its lookup
     * hash, so an unknown card counts too), and authorizations per credential and per card.
     */
    enrollmentPerCard: { perMinute: 2, burst: 5 },
    internalCredential: { perMinute: 120, burst: 30 },
    internalCard: { perMinute: 240, burst: 60 },
  },
  /** Keys one rate limiter tracks at most (its memory bound). */
  rateLimitKeysMax: 100_000,
  /** Audit rows written per transaction, and read per page when the chain is verified. */
  auditBatchMax: 256,
  /**
   * How long a server's audit writer waits after the first unwritten entry before it writes, so a
   * request's domain events, its own row and its neighbours' share one transaction (and one chain
   * lock) instead of one each. Also the most a crash can lose beyond the batch being written.
   */
  auditBatchDelayMs: 20,
  auditVerifyPageMax: 1_000,
  /** Shortest passphrase of a key backup (`kessai keys backup`): it is the only secret between a stolen backup and the bank's card keys. */
  backupPassphraseLengthMin: 16,
  /** PBKDF2-HMAC-SHA-512 iterations of a new key backup (JWE PBES2-HS512+A256KW, RFC 7518 §4.8; OWASP's figure for PBKDF2-SHA-512). */
  backupPbes2Iterations: 210_000,
  /** A backup asking more iterations than this is refused before any work (a crafted file cannot make restore spin). */
  backupPbes2IterationsMax: 10_000_000,
  /** Largest key folder a backup holds, and largest backup file restore reads. */
  backupBytesMax: 16 * 1024 * 1024,
  /** Rows per INSERT statement of `kessai db export` (a PGlite folder's data as SQL). */
  dbExportRowsPerStatement: 500,
  /** Most files in one key folder backup. */
  backupFilesMax: 1_000,
  /** `kessai serve`: merchants one KESSAI_MERCHANTS_FILE may list, webhook secrets one KESSAI_WEBHOOK_SECRETS_FILE may hold, and the bytes of any configuration file it reads. */
  configMerchantsMax: 1_000,
  configWebhookSecretsMax: 10,
  configFileBytesMax: 1024 * 1024,
  /** `kessai serve`: how long the process waits for its `{"listening":…}` line in the test support (a cold PGlite initdb takes up to 20 s). */
  serveStartMsMax: 90_000,
  /**
   * Draining (packages/service/src/process-main.ts): after SIGTERM or SIGINT a server answers
   * /readyz 503 at once but keeps serving this long, so a load balancer's health checks (every
   * second or few, failing after two or three misses) take it out of rotation before it stops
   * listening.
   */
  drainReadinessDelayMs: 5_000,
  /**
   * From the signal to the exit: readiness delay, closing the listener, in-flight requests and the
   * background workers finishing, the database closing. Past it the process exits 1 with a log line.
   * Under Kubernetes' default 30 s grace period, and longer than upstreamTimeoutMs plus the delay,
   * so a request waiting on an issuer still gets its answer.
   */
  drainTimeoutMs: 25_000,
  /** /readyz: each readiness check (database `select 1`, keys, directory, issuers) answers within this, or counts as failed. */
  readinessCheckTimeoutMs: 2_000,
  /** An inbound Request-Id longer than this (or with other characters than [A-Za-z0-9._-]) is replaced by one of the server's. */
  requestIdLengthMax: 64,
  /**
   * Accounts imported by one call of the bank's `POST /admin/v1/accounts/import` (one transaction);
   * `kessai accounts import` sends a longer file in batches of this many rows. 100 rows of the
   * longest fields stay well under bodyBytesMax, which bounds the call's body as every other's.
   */
  accountsImportRowsMax: 100,
  /** Rows `kessai accounts import` reads from one file (its memory bound): larger files are split by the bank's operator. */
  accountsImportFileRowsMax: 1_000_000,
  /**
   * Merchant API keys at the broker (`kessai merchants rotate-key`, Stripe's "roll key"): the old key
   * keeps working this long after a roll unless the operator retires it at once (`--now`), at most
   * apiKeyOverlapSecondsMax; a merchant has at most merchantApiKeysMax keys that still work.
   */
  apiKeyOverlapSecondsDefault: 24 * 60 * 60,
  apiKeyOverlapSecondsMax: 7 * 24 * 60 * 60,
  merchantApiKeysMax: 3,
  /**
   * The authentication server keeps an issuer's metadata this long before fetching it again (apps/auth-
   * server/src/issuers.ts), and reads at most this many keys from an issuer's JWKS.
   */
  issuerMetadataTtlMs: 5 * 60 * 1000,
  issuerJwksKeysMax: 20,
  /**
   * The merchant SDK's authorization verifier (packages/sdk/src/authorization-verifier.ts): an
   * issuer's JWKS is fetched again for an unknown kid at most every merchantJwksCooldownMs (as jose's
   * remote JWKS does); keys older than merchantJwksCacheMaxAgeMs are fetched again before use (the
   * old ones still serve if that fails); a JWKS of more than merchantJwksKeysMax keys is refused.
   */
  merchantJwksCooldownMs: 30_000,
  merchantJwksCacheMaxAgeMs: 10 * 60 * 1000,
  merchantJwksKeysMax: 32,
  /** How long a browser may cache a preflight answer for the wallet's origins (Access-Control-Max-Age). */
  preflightMaxAgeSeconds: 600,
  /** The operator consoles (web/shared/console/ui.tsx) load their data again this often while live. */
  consoleRefreshMs: 5_000,
  /** The operator consoles ask each list for its newest consoleListRows items (at most listPageMax). */
  consoleListRows: 50,
  /**
   * The browser wallet's exported device key (web/wallet/wallet/keys.ts): PBKDF2-SHA256 iterations
   * of a new export (OWASP's figure), the most an imported file may ask (a crafted file cannot make
   * the page spin), and the shortest passphrase. The wallet keeps its last walletHistoryMax payments.
   */
  walletExportPbkdf2Iterations: 600_000,
  walletExportPbkdf2IterationsMax: 10_000_000,
  walletExportPassphraseLengthMin: 10,
  walletHistoryMax: 200,
  /**
   * Development TLS (packages/service/src/tls.ts): the CA's and a leaf's validity, renewal of anything expiring within
   * devCertRenewBeforeMs, notBefore backdated so small clock differences do not matter.
   */
  devCaValidityMs: 10 * 365 * 24 * 60 * 60 * 1000,
  devLeafValidityMs: 365 * 24 * 60 * 60 * 1000,
  devCertRenewBeforeMs: 30 * 24 * 60 * 60 * 1000,
  devCertBackdateMs: 60 * 60 * 1000,
  /** The LISTEN connection's reconnect back-off: first wait, doubling up to the max. */
  dbListenReconnectMsFirst: 100,
  dbListenReconnectMsMax: 5_000,
  /**
   * Ports handed to another process (packages/service/src/ports.ts): below the kernel's ephemeral range, tried at most
   * this many times.
   */
  handedPortMin: 20_000,
  handedPortMax: 32_767,
  handedPortAttemptsMax: 50,
  /**
   * `kessai serve` configuration files: the most a tuning key may ask for (pool size, in-flight per work class,
   * credentials per card).
   */
  configPoolSizeMax: 1_000,
  configInFlightMax: 100_000,
  configCredentialsPerCardMax: 1_000_000,
  /** `kessai demo`: how long it waits for the shop to record the capture. */
  demoCaptureWaitMs: 20_000,
  /** The largest file the CLI wallet reads from its storage (a sealed credential is at most 16 KiB). */
  walletStorageFileBytesMax: 64 * 1024,
  /** `kessai wallet listen`: consecutive reconnections after the event stream drops, and the first pause (doubling). */
  walletListenReconnectsMax: 5,
  walletListenReconnectDelayMsFirst: 1_000,
  /** Request ids `kessai wallet listen` remembers, so a request pushed twice is shown once. */
  walletListenSeenRequestsMax: 1_000,
  /** A fee's percentage part in basis points: at most 100 %. */
  feeBasisPointsMax: 10_000,
  /**
   * Public keys a process keeps imported (importPublicKey in crypto.ts: devices' keys, by their
   * exact coordinates): past this many the oldest is dropped and imported again when next used.
   */
  importedPublicKeysMax: 10_000,
} as const;

export type Limits = typeof limits;

/**
 * How the limits must relate, checked when this module loads (TIGER_STYLE: assert the relations
 * between constants): each row is a relation the comments above promise, and a change of one limit
 * that breaks it stops every server and test at start instead of misbehaving under load.
 */
export const limitRelations: ReadonlyArray<readonly [string, (l: Limits) => boolean]> = [
  ['amountMinorMax ≤ ledgerAmountMax < ledgerBalanceMax',
    (l) => l.amountMinorMax <= l.ledgerAmountMax && l.ledgerAmountMax < l.ledgerBalanceMax],
  ['paymentRequestTtlMsMin ≤ paymentRequestTtlMsDefault ≤ paymentRequestTtlMsMax',
    (l) => l.paymentRequestTtlMsMin <= l.paymentRequestTtlMsDefault
      && l.paymentRequestTtlMsDefault <= l.paymentRequestTtlMsMax],
  ['holdTimeoutSecondsMin ≤ holdTimeoutSecondsDefault ≤ holdTimeoutSecondsMax',
    (l) => l.holdTimeoutSecondsMin <= l.holdTimeoutSecondsDefault
      && l.holdTimeoutSecondsDefault <= l.holdTimeoutSecondsMax],
  ['authorizationDeadlineMs < upstreamTimeoutMs < walletApproveTimeoutMs',
    (l) => l.authorizationDeadlineMs < l.upstreamTimeoutMs && l.upstreamTimeoutMs < l.walletApproveTimeoutMs],
  ['dbStatementTimeoutMs < dbQueryTimeoutMs < upstreamTimeoutMs',
    (l) => l.dbStatementTimeoutMs < l.dbQueryTimeoutMs && l.dbQueryTimeoutMs < l.upstreamTimeoutMs],
  ['dbConnectTimeoutMs < upstreamTimeoutMs', (l) => l.dbConnectTimeoutMs < l.upstreamTimeoutMs],
  ['connectionIdleMsMax > sseHeartbeatMs, upstreamTimeoutMs and keepAliveTimeoutMs',
    (l) => l.connectionIdleMsMax > Math.max(l.sseHeartbeatMs, l.upstreamTimeoutMs, l.keepAliveTimeoutMs)],
  ['requestTimeoutCheckMs < requestTimeoutMs', (l) => l.requestTimeoutCheckMs < l.requestTimeoutMs],
  ['webhookTimeoutMs < webhookLeaseMs', (l) => l.webhookTimeoutMs < l.webhookLeaseMs],
  ['webhookMarkDelayMs < webhookLeaseMs', (l) => l.webhookMarkDelayMs < l.webhookLeaseMs],
  ['webhookAttemptsMax = webhookRetryDelaysMs.length + 1',
    (l) => l.webhookAttemptsMax === l.webhookRetryDelaysMs.length + 1],
  ['webhookRetryDelaysMs never shrink',
    (l) => l.webhookRetryDelaysMs.every((d, i) => i === 0 || d >= l.webhookRetryDelaysMs[i - 1]!)],
  ['upstreamTimeoutMs + drainReadinessDelayMs < drainTimeoutMs < 30 s (Kubernetes grace period)',
    (l) => l.upstreamTimeoutMs + l.drainReadinessDelayMs < l.drainTimeoutMs && l.drainTimeoutMs < 30_000],
  ['inDoubtFirstCheckMs ≤ inDoubtRetryMsMax', (l) => l.inDoubtFirstCheckMs <= l.inDoubtRetryMsMax],
  ['inDoubtClaimMs ≥ 2 × upstreamTimeoutMs (an inquiry and a reversal)',
    (l) => l.inDoubtClaimMs >= 2 * l.upstreamTimeoutMs],
  ['idempotencyLeaseMs < idempotencyKeyTtlMs', (l) => l.idempotencyLeaseMs < l.idempotencyKeyTtlMs],
  ['shop reconciler within convergenceMs',
    (l) => l.shopReconcileAfterMs + l.shopReconcileIntervalMs + l.shopWorkerIntervalMsDefault < l.convergenceMs],
  ['walletOutcomePollMs < walletOutcomeWaitMs', (l) => l.walletOutcomePollMs < l.walletOutcomeWaitMs],
  ['holdSyncFirstCheckMs ≤ holdSyncRetryMs', (l) => l.holdSyncFirstCheckMs <= l.holdSyncRetryMs],
  ['pinAttemptsMax ≤ pinFailuresWindowMax', (l) => l.pinAttemptsMax <= l.pinFailuresWindowMax],
  ['recoveryAttemptsMax ≤ recoveryAttemptsPerCredentialMax',
    (l) => l.recoveryAttemptsMax <= l.recoveryAttemptsPerCredentialMax],
  ['ledgerBatchSizeMax ≤ ledgerQueueDepthMax', (l) => l.ledgerBatchSizeMax <= l.ledgerQueueDepthMax],
  ['accountsImportRowsMax ≤ accountsImportFileRowsMax', (l) => l.accountsImportRowsMax <= l.accountsImportFileRowsMax],
  ['backupPbes2Iterations ≤ backupPbes2IterationsMax', (l) => l.backupPbes2Iterations <= l.backupPbes2IterationsMax],
  ['walletExportPbkdf2Iterations ≤ walletExportPbkdf2IterationsMax',
    (l) => l.walletExportPbkdf2Iterations <= l.walletExportPbkdf2IterationsMax],
  ['merchantJwksCooldownMs < merchantJwksCacheMaxAgeMs', (l) => l.merchantJwksCooldownMs < l.merchantJwksCacheMaxAgeMs],
  ['consoleListRows ≤ listPageMax', (l) => l.consoleListRows <= l.listPageMax],
  ['apiKeyOverlapSecondsDefault ≤ apiKeyOverlapSecondsMax',
    (l) => l.apiKeyOverlapSecondsDefault <= l.apiKeyOverlapSecondsMax],
  ['sseStreamsPerCredentialMax ≤ sseStreamsMax', (l) => l.sseStreamsPerCredentialMax <= l.sseStreamsMax],
  ['dbListenReconnectMsFirst ≤ dbListenReconnectMsMax ≤ dbListenHeartbeatMs',
    (l) => l.dbListenReconnectMsFirst <= l.dbListenReconnectMsMax && l.dbListenReconnectMsMax <= l.dbListenHeartbeatMs],
  ['devCertRenewBeforeMs < devLeafValidityMs < devCaValidityMs',
    (l) => l.devCertRenewBeforeMs < l.devLeafValidityMs && l.devLeafValidityMs < l.devCaValidityMs],
  ['handedPortMin < handedPortMax < 32 768 (the ephemeral range)',
    (l) => l.handedPortMin < l.handedPortMax && l.handedPortMax < 32_768],
  ['holderNameLengthMax and orderIdLengthMax ≤ stringLengthMax',
    (l) => Math.max(l.holderNameLengthMax, l.orderIdLengthMax) <= l.stringLengthMax],
  ['eventStreamPollMs < eventStreamLookBackMs (a late-committed event is looked for over several polls)',
    (l) => l.eventStreamPollMs < l.eventStreamLookBackMs],
  ['settlementEventsPollMs < settlementEventsClaimMs; claim ≥ 2 × upstreamTimeoutMs (an ask and its page)',
    (l) => l.settlementEventsPollMs < l.settlementEventsClaimMs
      && l.settlementEventsClaimMs >= 2 * l.upstreamTimeoutMs],
  ['eventStreamBatchMax < eventStreamSentIdsMax (one poll never reaches the cap alone)',
    (l) => l.eventStreamBatchMax < l.eventStreamSentIdsMax],
];

/** The relations `l` breaks (none for the limits above). */
export function brokenLimitRelations(l: Limits): string[] {
  return limitRelations.filter(([, holds]) => !holds(l)).map(([name]) => name);
}

{
  const broken = brokenLimitRelations(limits);
  assert(broken.length === 0, `limits relate as limitRelations says (broken: ${broken.join('; ')})`);
}
