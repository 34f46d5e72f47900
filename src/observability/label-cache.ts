import { metrics, type BoundCounter, type BoundHistogram } from './metrics.js';

/** Label objects of the successful path of one (system, topic, group). */
export interface Labelled {
  readonly consumed: Readonly<Record<string, string>>;
  readonly sent: Readonly<Record<string, string>>;
  /** Retries and inbox duplicates. */
  readonly destination: Readonly<Record<string, string>>;
  /** The counters of the path every message takes, bound to the labels above. */
  readonly consumedCount: BoundCounter;
  readonly sentCount: BoundCounter;
  readonly retryCount: BoundCounter;
  readonly duplicateCount: BoundCounter;
  /** The process duration of a delivery handled without error. */
  readonly processedDuration: BoundHistogram;
}

/**
 * Label objects built once per destination rather than per message (a consumer or producer
 * sees few distinct (system, topic, group) triples), found without building a key string.
 */
export class LabelCache {
  private readonly systems = new Map<string, Map<string, Map<string, Labelled>>>();
  // A subscription's deliveries come one destination after another: the last one found
  // answers most calls without a lookup.
  private last: { system: string; topic: string; group: string; labels: Labelled } | undefined;

  get(system: string, topic: string, group: string): Labelled {
    const last = this.last;
    if (last && last.topic === topic && last.group === group && last.system === system)
      return last.labels;
    const labels = this.find(system, topic, group);
    this.last = { system, topic, group, labels };
    return labels;
  }

  private find(system: string, topic: string, group: string): Labelled {
    let topics = this.systems.get(system);
    if (!topics) this.systems.set(system, (topics = new Map<string, Map<string, Labelled>>()));
    let groups = topics.get(topic);
    if (!groups) topics.set(topic, (groups = new Map<string, Labelled>()));
    let labels = groups.get(group);
    if (!labels) {
      const consumed = {
        messaging_system: system,
        messaging_destination_name: topic,
        messaging_consumer_group_name: group,
        messaging_operation_name: 'process',
        error_type: '',
      };
      const sent = {
        messaging_system: system,
        messaging_destination_name: topic,
        messaging_operation_name: 'send',
        error_type: '',
      };
      const destination = {
        messaging_destination_name: topic,
        messaging_consumer_group_name: group,
      };
      const processed = {
        messaging_system: system,
        messaging_destination_name: topic,
        messaging_consumer_group_name: group,
        error_type: '',
      };
      labels = {
        consumed,
        sent,
        destination,
        consumedCount: metrics.consumed.bind(consumed),
        sentCount: metrics.sent.bind(sent),
        retryCount: metrics.retries.bind(destination),
        duplicateCount: metrics.inboxDuplicates.bind(destination),
        processedDuration: metrics.processDuration.bind(processed),
      };
      groups.set(group, labels);
    }
    return labels;
  }
}
