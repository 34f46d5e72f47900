import type { TransportCapabilities } from './transport.js';

/** What `ferry advise` weighs besides capabilities. */
export interface TransportAdvice {
  /** Rough sustained throughput one modest deployment handles, messages per second. */
  readonly throughput: number;
  /** Wire protocols other systems can speak to it with. */
  readonly protocols: readonly string[];
  /** 1 = a file or one small server; 3 = a cluster with its own expertise. */
  readonly operations: 1 | 2 | 3;
  /** Scales out beyond one machine. */
  readonly scalesOut: boolean;
}

/**
 * The facts of one transport, stated once: its URL schemes, what it promises and what the
 * selection guide weighs. The driver builds `transport.capabilities` from it, the URL
 * registry reads its schemes, `advise` reads its capabilities and advice, and the README
 * promises table is checked against it.
 */
export interface TransportDescriptor {
  /** `transport.name`. */
  readonly name: string;
  /** How the README names it. */
  readonly title: string;
  /** URL schemes that open it, without the colon; the first is the usual one. */
  readonly schemes: readonly string[];
  /** A URL that opens it against a local default installation. */
  readonly exampleUrl: string;
  /** The package subpath that exports its factory. */
  readonly subpath: string;
  /** Its promises; `maxMessageBytes` is the default, which an option may change. */
  readonly capabilities: TransportCapabilities;
  /** Words the README adds to a capability (e.g. `queue per group`). */
  readonly notes?: {
    readonly [K in Exclude<keyof TransportCapabilities, 'maxMessageBytes'>]?: string;
  };
  /** Absent for transports the guide never recommends (the in-process one). */
  readonly advice?: TransportAdvice;
}

/** The capabilities of a transport instance: the descriptor's, with its own size limit. */
export const capabilitiesOf = (
  descriptor: TransportDescriptor,
  maxMessageBytes: number | undefined,
): TransportCapabilities => ({
  ...descriptor.capabilities,
  maxMessageBytes: maxMessageBytes ?? descriptor.capabilities.maxMessageBytes,
});
