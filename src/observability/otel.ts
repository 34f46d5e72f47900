import { createRequire } from 'node:module';
import type * as OtelApi from '@opentelemetry/api';

export type { OtelApi };

/**
 * `@opentelemetry/api` is an optional peer: it is loaded on first use and only when the
 * application installed it. The api keeps its registered providers on one global object
 * (shared by every copy of the package, CommonJS or ESM), so loading the CommonJS entry here
 * sees an SDK the application registered through its own import.
 */
let loaded: typeof OtelApi | null | undefined;

export function otelApi(): typeof OtelApi | undefined {
  if (loaded === undefined) {
    try {
      loaded = createRequire(import.meta.url)('@opentelemetry/api') as typeof OtelApi;
    } catch {
      loaded = null;
    }
  }
  return loaded ?? undefined;
}

// The api's own registry key for major version 1; providers registered through any copy of
// the api land here. Reading it is a property lookup, so the checks below cost nothing
// measurable when no SDK is registered.
const GLOBAL_KEY = Symbol.for('opentelemetry.js.api.1');

function registered(kind: 'trace' | 'metrics'): boolean {
  const global = (globalThis as Record<symbol, Record<string, unknown> | undefined>)[GLOBAL_KEY];
  return global?.[kind] !== undefined;
}

/** The api when a tracer provider is registered, else undefined (tracing costs nothing). */
export function activeTraceApi(): typeof OtelApi | undefined {
  return registered('trace') ? otelApi() : undefined;
}

/** The api when a meter provider is registered, else undefined. */
export function activeMetricsApi(): typeof OtelApi | undefined {
  return registered('metrics') ? otelApi() : undefined;
}
