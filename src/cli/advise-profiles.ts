import type { TransportCapabilities } from '../transport/transport.js';
import type { TransportAdvice, TransportDescriptor } from '../transport/descriptor.js';
import { TRANSPORTS } from '../transport/descriptors.js';

/** What a team needs from its messaging, as the selection guide asks it. */
export interface Needs {
  /** Expected peak messages per second. */
  readonly tps?: number;
  /** Losing a message is not acceptable (orders, payments). */
  readonly noLoss?: boolean;
  /** Consumers must be able to reprocess past messages. */
  readonly replay?: boolean;
  /** A wire protocol other systems already speak. */
  readonly protocol?: 'amqp' | 'stomp';
  /** The team wants the least to operate. */
  readonly simpleOps?: boolean;
}

/** The facts the guide weighs, per transport: its descriptor's, nothing restated. */
export interface TransportProfile extends TransportAdvice {
  readonly transport: string;
  readonly url: string;
  readonly capabilities: Omit<TransportCapabilities, 'maxMessageBytes'>;
}

/** Every transport the guide may recommend, read from the transport descriptors. */
export const PROFILES: readonly TransportProfile[] = TRANSPORTS.flatMap(
  (descriptor: TransportDescriptor) => {
    if (!descriptor.advice) return [];
    const { maxMessageBytes: _bytes, ...capabilities } = descriptor.capabilities;
    return [
      {
        transport: descriptor.name,
        url: descriptor.exampleUrl,
        capabilities,
        ...descriptor.advice,
      },
    ];
  },
);

export interface Advice {
  readonly transport: string;
  readonly url: string;
  readonly reasons: readonly string[];
  /** The others that meet every hard need, best first, with what speaks against each. */
  readonly alternatives: readonly { transport: string; url: string; caveats: readonly string[] }[];
  /** Candidates that miss a hard need, with the reason. */
  readonly excluded: readonly { transport: string; reason: string }[];
}

/**
 * The selection guide as a function: hard needs (protocol, no loss, replay, traffic that one
 * machine cannot carry) exclude transports; the rest are ranked by fit and simplicity.
 */
export function advise(needs: Needs): Advice {
  const tps = needs.tps ?? 0;
  const excluded: { transport: string; reason: string }[] = [];
  const ranked: {
    profile: TransportProfile;
    score: number;
    reasons: string[];
    caveats: string[];
  }[] = [];

  for (const profile of PROFILES) {
    const { capabilities } = profile;
    const miss = (reason: string): void =>
      void excluded.push({ transport: profile.transport, reason });
    if (needs.protocol && !profile.protocols.includes(needs.protocol)) {
      miss(`does not speak ${needs.protocol.toUpperCase()}`);
      continue;
    }
    if (needs.noLoss && (!capabilities.persistent || capabilities.delivery !== 'at-least-once')) {
      miss('can lose messages (in memory, at-most-once: nothing kept while no subscriber listens)');
      continue;
    }
    if (needs.replay && !capabilities.replay) {
      miss('cannot reprocess past messages');
      continue;
    }
    if (tps > profile.throughput) {
      miss(
        `${tps.toLocaleString('en')} msg/s is above what it carries (~${profile.throughput.toLocaleString('en')} msg/s)`,
      );
      continue;
    }

    const reasons: string[] = [];
    const caveats: string[] = [];
    let score = 0;
    if (needs.protocol) reasons.push(`speaks ${needs.protocol.toUpperCase()}, which you need`);
    if (needs.noLoss)
      reasons.push('persists every message and redelivers until a consumer acknowledges it');
    if (needs.replay) {
      reasons.push(`replays a consumer group from an offset or a point in time`);
    }
    if (tps >= 10_000) {
      // Scaling out matters most when the team can run a cluster; with simple ops asked for,
      // a single fast server that carries the load is the better fit.
      if (profile.scalesOut) score += needs.simpleOps ? 1 : 3;
      if (profile.scalesOut)
        reasons.push(`carries ${tps.toLocaleString('en')} msg/s and scales out by partitions`);
      else caveats.push('bound to one machine at this traffic');
    } else if (tps > 0) {
      reasons.push(`${tps.toLocaleString('en')} msg/s is well within its range`);
    }
    if (needs.simpleOps) {
      score += 3 - profile.operations;
      if (profile.operations === 1) reasons.push('simple to operate (one small server or a file)');
      else
        caveats.push(
          profile.operations === 3
            ? 'a cluster to operate, with its own expertise'
            : 'a broker to operate',
        );
    } else {
      // With no preference stated, the guide's defaults for durable business events apply.
      if (profile.transport === 'kafka' && (needs.noLoss || needs.replay || tps >= 10_000))
        score += 2;
      if (profile.transport === 'sqlite')
        caveats.push('one machine only: the embedded default for development and small services');
    }
    if (!needs.noLoss && !needs.replay && profile.capabilities.delivery === 'at-most-once') {
      score += needs.simpleOps ? 1 : 0;
      reasons.push('fastest and simplest fan-out when losing a message is acceptable');
      caveats.push('at-most-once: messages published while nobody listens are lost');
    }
    if (profile.transport === 'sqlite' && !needs.simpleOps) score -= 1;
    if (profile.transport === 'stomp' && needs.protocol !== 'stomp') score -= 1;
    ranked.push({ profile, score, reasons, caveats });
  }

  ranked.sort((a, b) => b.score - a.score);
  const [best, ...rest] = ranked;
  if (!best) {
    return {
      transport: 'none',
      url: '',
      reasons: [
        'No single transport meets every need; relax one (e.g. replay with AMQP is not available).',
      ],
      alternatives: [],
      excluded,
    };
  }
  return {
    transport: best.profile.transport,
    url: best.profile.url,
    reasons: best.reasons.length > 0 ? best.reasons : ['meets every stated need'],
    alternatives: rest.map(({ profile, caveats }) => ({
      transport: profile.transport,
      url: profile.url,
      caveats,
    })),
    excluded,
  };
}
