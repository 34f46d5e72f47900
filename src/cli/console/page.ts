// The page frame and the small formatters every section uses.
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

export function payload(context: PageContext, body: Buffer): SafeHtml {
  if (context.hidePayloads) return html`<span class="hidden-payload">hidden</span>`;
  const text = body.toString('utf8');
  return html`<pre class="payload">${text.length > 2000 ? `${text.slice(0, 2000)}…` : text}</pre>`;
}

export function age(ms: number | undefined): string {
  if (ms === undefined) return '–';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 120_000) return `${Math.round(ms / 1000)} s`;
  if (ms < 7_200_000) return `${Math.round(ms / 60_000)} min`;
  return `${Math.round(ms / 3_600_000)} h`;
}
