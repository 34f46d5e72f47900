import type { DeadLetter } from '../../core/dead-letters.js';
import type { OutboxRow } from '../../outbox/inspect.js';
import type { FoundMessage, Snapshot } from './data.js';
import { html, type SafeHtml } from './html.js';

/** What every page needs to know about how the console was started. */
export interface PageContext {
  readonly allowActions: boolean;
  readonly hidePayloads: boolean;
  /** Sent back with every action (with the cookie, SameSite and Origin checks). */
  readonly csrf: string;
  /** Where the console reads from, without credentials. */
  readonly db: string;
  readonly transport: string;
}

export type ActionName = 'outbox.retry' | 'outbox.skip' | 'redrive';

export function layout(context: PageContext, title: string, body: SafeHtml): string {
  return html`<!doctype html>
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>${title} · ferry console</title>
        <link rel="stylesheet" href="/console.css" />
        <script src="/console.js" defer></script>
      </head>
      <body>
        <header>
          <h1><a href="/">ferry console</a></h1>
          <p class="sources">
            db <code>${context.db}</code> · transport <code>${context.transport}</code> · actions
            <strong data-actions="${context.allowActions ? 'on' : 'off'}"
              >${context.allowActions ? 'on' : 'off'}</strong
            >${context.hidePayloads ? ' · payloads hidden' : ''}
          </p>
          <form class="find" method="get" action="/find">
            <label
              >Find a message <input name="q" placeholder="message id or key" required
            /></label>
            <button type="submit">Find</button>
          </form>
        </header>
        <main>${body}</main>
      </body>
    </html> `.text;
}

/** The sections that refresh by themselves. */
export function liveSections(context: PageContext, snapshot: Snapshot): SafeHtml {
  return html`<div id="live" data-at="${snapshot.at.toISOString()}">
    ${outboxSection(context, snapshot)} ${relaysSection(snapshot)}
    ${consumersSection(context, snapshot)}
    <p class="updated">updated <time>${snapshot.at.toISOString()}</time></p>
  </div>`;
}

function outboxSection(context: PageContext, snapshot: Snapshot): SafeHtml {
  const { outbox } = snapshot;
  const rate = outbox.publishedPerMinute;
  const peak = Math.max(1, ...rate);
  return html`<section id="outbox">
    <h2>Outbox</h2>
    <dl class="totals">
      <div>
        <dt>pending</dt>
        <dd data-count="pending">${outbox.totals.pending}</dd>
      </div>
      <div>
        <dt>dead</dt>
        <dd data-count="dead">${outbox.totals.dead}</dd>
      </div>
      <div>
        <dt>blocked</dt>
        <dd data-count="blocked">${outbox.totals.blocked}</dd>
      </div>
      <div>
        <dt>oldest pending</dt>
        <dd data-count="oldest">${age(outbox.oldestPendingMs)}</dd>
      </div>
      <div>
        <dt>published / min (last ${rate.length} min)</dt>
        <dd class="rate" data-rate="${rate.join(',')}">
          <svg
            class="spark"
            viewBox="0 0 ${rate.length * 10} 30"
            width="${rate.length * 10}"
            height="30"
            aria-hidden="true"
          >
            ${rate.map((n, i) => {
              const h = Math.max(1, Math.round((n / peak) * 30));
              return html`<rect x="${i * 10 + 1}" y="${30 - h}" width="8" height="${h}"
                ><title>${n}</title></rect
              >`;
            })}
          </svg>
          <span class="now">${rate.at(-1) ?? 0}</span>
        </dd>
      </div>
    </dl>
    <table class="partitions">
      <thead>
        <tr>
          <th>partition</th>
          <th>pending</th>
          <th>dead</th>
          <th>blocked</th>
          <th>oldest pending</th>
          <th>relay</th>
          <th>fence</th>
        </tr>
      </thead>
      <tbody>
        ${outbox.partitions.map(
          (p) =>
            html`<tr data-partition="${p.partition}">
              <td>${p.partition}</td>
              <td data-col="pending">${p.pending}</td>
              <td data-col="dead">${p.dead}</td>
              <td data-col="blocked">${p.blocked}</td>
              <td>${age(p.oldestPendingMs)}</td>
              <td>${p.owner ?? '–'}</td>
              <td>${p.owner === undefined ? '–' : String(p.fence ?? '')}</td>
            </tr>`,
        )}
      </tbody>
    </table>
    <h3>Dead and blocked rows</h3>
    ${
      outbox.stuck.length === 0
        ? html`<p class="empty" id="no-stuck">None.</p>`
        : html`<table class="stuck">
            <thead>
              <tr>
                <th>status</th>
                <th>id</th>
                <th>topic</th>
                <th>key</th>
                <th>partition</th>
                <th>attempts</th>
                <th>error</th>
                <th>payload</th>
                ${context.allowActions ? html`<th>actions</th>` : ''}
              </tr>
            </thead>
            <tbody>
              ${outbox.stuck.map((row) => stuckRow(context, row))}
            </tbody>
          </table>`
    }
  </section>`;
}

function stuckRow(context: PageContext, row: OutboxRow): SafeHtml {
  const status = row.blocked ? 'blocked' : row.status;
  return html`<tr class="row-${status}" data-id="${row.id}">
    <td><span class="badge ${status}">${status}</span></td>
    <td><code>${row.id}</code></td>
    <td>${row.topic}</td>
    <td>${row.key ?? '–'}</td>
    <td>${row.partition}</td>
    <td>${row.attempts}</td>
    <td class="error">${row.lastError ?? ''}</td>
    <td>${payload(context, row.body)}</td>
    ${
      context.allowActions
        ? html`<td>
            ${
              row.status === 'dead'
                ? html`<a
                      class="action"
                      href="/confirm?action=outbox.retry&amp;id=${encodeURIComponent(row.id)}"
                      >retry</a
                    >
                    <a
                      class="action"
                      href="/confirm?action=outbox.skip&amp;id=${encodeURIComponent(row.id)}"
                      >skip</a
                    >`
                : html`<span class="hint">waits for the dead row of its key</span>`
            }
          </td>`
        : ''
    }
  </tr>`;
}

function relaysSection(snapshot: Snapshot): SafeHtml {
  return html`<section id="relays">
    <h2>Relays</h2>
    ${
      snapshot.relays.length === 0
        ? html`<p class="empty">No relay has registered in the last hour.</p>`
        : html`<table>
            <thead>
              <tr>
                <th>relay</th>
                <th>state</th>
                <th>partitions held (fence)</th>
                <th>last heartbeat</th>
              </tr>
            </thead>
            <tbody>
              ${snapshot.relays.map(
                (relay) =>
                  html`<tr data-relay="${relay.owner}">
                    <td><code>${relay.owner}</code></td>
                    <td>
                      <span class="badge ${relay.live ? 'live' : 'gone'}"
                        >${relay.live ? 'live' : 'expired'}</span
                      >
                    </td>
                    <td>
                      ${
                        relay.leases.length === 0
                          ? '–'
                          : relay.leases
                              .map((l) => `${l.partition} (${String(l.fence)})`)
                              .join(', ')
                      }
                    </td>
                    <td>registration until <time>${relay.expiresAt.toISOString()}</time></td>
                  </tr>`,
              )}
            </tbody>
          </table>`
    }
  </section>`;
}

function consumersSection(context: PageContext, snapshot: Snapshot): SafeHtml {
  const { consumers } = snapshot;
  return html`<section id="consumers">
    <h2>Consumers</h2>
    <h3>Lag</h3>
    ${consumers.lagUnavailable === undefined ? '' : html`<p class="note">${consumers.lagUnavailable}</p>`}
    ${
      consumers.lag.length === 0
        ? html`<p class="empty">No consumer group known yet.</p>`
        : html`<table class="lag">
            <thead>
              <tr>
                <th>topic</th>
                <th>group</th>
                <th>lag</th>
                <th>per partition (committed / end)</th>
              </tr>
            </thead>
            <tbody>
              ${consumers.lag.map(
                (l) =>
                  html`<tr data-topic="${l.topic}" data-group="${l.group}">
                    <td>${l.topic}</td>
                    <td>${l.group}</td>
                    <td data-col="lag">${l.total}</td>
                    <td>
                      ${l.partitions.map(
                        (p) =>
                          html`<span class="part"
                            >${p.partition}: ${p.committed ?? '–'} / ${p.end}</span
                          > `,
                      )}
                    </td>
                  </tr>`,
              )}
            </tbody>
          </table>`
    }
    <h3>Dead letters</h3>
    ${consumers.deadLetters.map((d) => deadLetters(context, d.topic, d.letters, d.unavailable))}
  </section>`;
}

function deadLetters(
  context: PageContext,
  topic: string,
  letters: readonly DeadLetter[],
  unavailable: string | undefined,
): SafeHtml {
  const groups = [...new Set(letters.map((l) => l.group ?? ''))].sort();
  const table = html`<table class="dead-letters">
    <thead>
      <tr>
        ${context.allowActions ? html`<th></th>` : ''}
        <th>id</th>
        <th>group</th>
        <th>key</th>
        <th>reason</th>
        <th>attempts</th>
        <th>error</th>
        <th>dead since</th>
        <th>payload</th>
      </tr>
    </thead>
    <tbody>
      ${letters.map(
        (l) =>
          html`<tr data-id="${l.id}" data-group="${l.group ?? ''}">
            ${
              context.allowActions
                ? html`<td>
                    <input type="checkbox" name="id" value="${l.id}" aria-label="select ${l.id}" />
                  </td>`
                : ''
            }
            <td><code>${l.id}</code></td>
            <td>${l.group ?? '–'}</td>
            <td>${l.key ?? '–'}</td>
            <td>${l.reason ?? ''}</td>
            <td>${l.attempts ?? ''}</td>
            <td class="error">${l.error ?? ''}</td>
            <td>${l.at?.toISOString() ?? ''}</td>
            <td>${payload(context, l.body)}</td>
          </tr>`,
      )}
    </tbody>
  </table>`;
  return html`<div class="dlq" data-topic="${topic}" data-dead-letters="${letters.length}">
    <h4>${topic} <span class="count">${letters.length}</span></h4>
    ${unavailable === undefined ? '' : html`<p class="note">${unavailable}</p>`}
    ${
      letters.length === 0
        ? unavailable === undefined
          ? html`<p class="empty">None.</p>`
          : ''
        : context.allowActions
          ? html`<form method="get" action="/confirm">
              <input type="hidden" name="action" value="redrive" /><input
                type="hidden"
                name="topic"
                value="${topic}"
              />
              ${table}
              <button type="submit" class="action">Re-drive selected</button>
              ${groups.map(
                (group) =>
                  html` <a
                    class="action"
                    href="/confirm?action=redrive&amp;topic=${encodeURIComponent(topic)}&amp;group=${encodeURIComponent(group)}&amp;all=1"
                    >Re-drive all of ${group || 'no group'}</a
                  >`,
              )}
            </form>`
          : table
    }
  </div>`;
}

export function findSection(
  context: PageContext,
  query: string,
  found: readonly FoundMessage[],
): SafeHtml {
  return html`<section id="find">
    <h2>Find <q>${query}</q></h2>
    ${
      found.length === 0
        ? html`<p class="empty" id="not-found">
            No outbox row has this id or key (published rows may have been purged).
          </p>`
        : found.map(
            ({ row, appliedBy }) =>
              html`<article class="message" data-id="${row.id}">
                <h3>
                  <code>${row.id}</code>
                  <span
                    class="badge ${row.blocked ? 'blocked' : row.status}"
                    data-status="${row.blocked ? 'blocked' : row.status}"
                    >${row.blocked ? 'blocked' : row.status}</span
                  >
                </h3>
                <dl>
                  <div>
                    <dt>topic</dt>
                    <dd>${row.topic}</dd>
                  </div>
                  <div>
                    <dt>key</dt>
                    <dd>${row.key ?? '–'}</dd>
                  </div>
                  <div>
                    <dt>partition</dt>
                    <dd>${row.partition}</dd>
                  </div>
                  <div>
                    <dt>attempts</dt>
                    <dd data-field="attempts">${row.attempts}</dd>
                  </div>
                  <div>
                    <dt>created</dt>
                    <dd>${row.createdAt.toISOString()}</dd>
                  </div>
                  <div>
                    <dt>published</dt>
                    <dd data-field="published">${row.publishedAt?.toISOString() ?? 'not yet'}</dd>
                  </div>
                  ${
                    row.lastError === undefined
                      ? ''
                      : html`<div>
                          <dt>last error</dt>
                          <dd class="error">${row.lastError}</dd>
                        </div>`
                  }
                  <div>
                    <dt>payload</dt>
                    <dd>${payload(context, row.body)}</dd>
                  </div>
                </dl>
                <h4>Applied by</h4>
                ${
                  appliedBy.length === 0
                    ? html`<p class="empty">No group's inbox has applied it.</p>`
                    : html`<table class="applied">
                        <thead>
                          <tr>
                            <th>group</th>
                            <th>applied at</th>
                          </tr>
                        </thead>
                        <tbody>
                          ${appliedBy.map(
                            (entry) =>
                              html`<tr data-group="${entry.group}">
                                <td>${entry.group}</td>
                                <td>${entry.processedAt.toISOString()}</td>
                              </tr>`,
                          )}
                        </tbody>
                      </table>`
                }
              </article>`,
          )
    }
  </section>`;
}

export interface Confirmation {
  readonly action: ActionName;
  readonly ids: readonly string[];
  readonly topic?: string;
  readonly group?: string;
  readonly all?: boolean;
}

export function confirmSection(context: PageContext, confirmation: Confirmation): SafeHtml {
  const { action, ids, topic, group, all } = confirmation;
  const what =
    action === 'outbox.retry'
      ? `Put ${ids.length} dead outbox row(s) back to pending, so a relay publishes them.`
      : action === 'outbox.skip'
        ? `Skip ${ids.length} dead outbox row(s): they will never be published, and the rows of their key behind them go out.`
        : all
          ? `Move every dead letter of group ${group || '(none)'} on ${topic ?? ''} back, so it is handled again.`
          : `Move ${ids.length} dead letter(s) of ${topic ?? ''} back, so they are handled again.`;
  return html`<section id="confirm">
    <h2>Confirm</h2>
    <p class="what">${what}</p>
    ${
      ids.length > 0
        ? html`<ul>
            ${ids.map((id) => html`<li><code>${id}</code></li>`)}
          </ul>`
        : ''
    }
    <form method="post" action="/actions/${action}">
      <input type="hidden" name="csrf" value="${context.csrf}" />
      ${ids.map((id) => html`<input type="hidden" name="id" value="${id}" />`)}
      ${topic === undefined ? '' : html`<input type="hidden" name="topic" value="${topic}" />`}
      ${group === undefined ? '' : html`<input type="hidden" name="group" value="${group}" />`}
      ${all ? html`<input type="hidden" name="all" value="1" />` : ''}
      <input type="hidden" name="confirm" value="yes" />
      <button type="submit" id="confirm-action">Confirm</button> <a href="/">Cancel</a>
    </form>
  </section>`;
}

export function resultSection(message: string): SafeHtml {
  return html`<section id="result">
    <h2>Done</h2>
    <p class="result">${message}</p>
    <p><a href="/">Back</a></p>
  </section>`;
}

function payload(context: PageContext, body: Buffer): SafeHtml {
  if (context.hidePayloads) return html`<span class="hidden-payload">hidden</span>`;
  const text = body.toString('utf8');
  return html`<pre class="payload">${text.length > 2000 ? `${text.slice(0, 2000)}…` : text}</pre>`;
}

function age(ms: number | undefined): string {
  if (ms === undefined) return '–';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 120_000) return `${Math.round(ms / 1000)} s`;
  if (ms < 7_200_000) return `${Math.round(ms / 60_000)} min`;
  return `${Math.round(ms / 3_600_000)} h`;
}
