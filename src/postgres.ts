// `ferry/postgres`: the transactional outbox and the inbox on PostgreSQL (`pg`).
export {
  postgresInbox,
  postgresOutbox,
  postgresOutboxStore,
  type PgPool,
  type PgPoolClient,
  type PgQueryable,
  type PgResult,
  type PostgresConnectionOptions,
  type PostgresInbox,
  type PostgresInboxOptions,
  type PostgresOutbox,
  type PostgresOutboxOptions,
  type PostgresOutboxStore,
  type WakeSubscription,
} from './outbox/sql/postgres.js';
