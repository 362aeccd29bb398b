-- The audit log (who, what, when, outcome, origin, resource), hash-chained, append-only, has one
-- definition: auditLogSql in packages/service/src/audit.ts, which every server applies at start
-- (ensureAuditLog, idempotent, serialized across processes), re-arming its triggers each time.
-- This migration keeps its place in the sequence and holds no copy of it.
SELECT 1;
