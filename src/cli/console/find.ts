// The find page and the confirm/result pages of the console's actions.
import type { FoundMessage } from './data.js';
import { html, type SafeHtml } from './html.js';
import { payload, type ActionName, type PageContext } from './page.js';

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
