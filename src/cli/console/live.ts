// The sections of the front page that refresh by themselves: outbox, relays, consumers, dead letters.
import type { DeadLetter } from '../../core/dead-letters.js';
import type { OutboxRow } from '../../outbox/inspect.js';
import type { Snapshot } from './data.js';
import { html, type SafeHtml } from './html.js';
import { age, payload, type PageContext } from './page.js';

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
