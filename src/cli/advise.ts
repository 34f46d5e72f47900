import { Option, type Command } from 'commander';
import { advise, type Needs } from './advise-profiles.js';
import { action } from './common.js';
import { decimal } from './options.js';

interface AdviseFlags {
  tps?: number;
  loss: boolean;
  replay?: boolean;
  protocol?: 'amqp' | 'stomp';
  simpleOps?: boolean;
  json?: boolean;
}

export function adviseCommand(program: Command): void {
  program
    .command('advise')
    .description(
      'recommend a transport for your traffic, loss tolerance, replay and protocol needs',
    )
    .option('--tps <n>', 'expected peak messages per second', decimal({ min: 0 }))
    .option('--no-loss', 'losing a message is not acceptable')
    .option('--replay', 'consumers must reprocess past messages')
    .addOption(
      new Option('--protocol <name>', 'a wire protocol you need').choices(['amqp', 'stomp']),
    )
    .option('--simple-ops', 'as little to operate as possible')
    .option('--json', 'print the advice as JSON')
    .addHelpText('after', '\nExample:\n  ferry advise --no-loss --replay --tps 20000')
    .action(
      action(async (flags: AdviseFlags) => {
        const needs: Needs = {
          ...(flags.tps === undefined ? {} : { tps: flags.tps }),
          noLoss: !flags.loss,
          replay: flags.replay === true,
          ...(flags.protocol === undefined ? {} : { protocol: flags.protocol }),
          simpleOps: flags.simpleOps === true,
        };
        const advice = advise(needs);
        if (flags.json) {
          process.stdout.write(`${JSON.stringify(advice, null, 2)}\n`);
          return;
        }
        const lines = [
          `Recommended: ${advice.transport}`,
          ...advice.reasons.map((reason) => `  - ${reason}`),
          ...(advice.url ? [`  URL: ${advice.url}`] : []),
        ];
        if (advice.alternatives.length > 0) {
          lines.push('', 'Also fits:');
          for (const alternative of advice.alternatives) {
            const caveats =
              alternative.caveats.length > 0 ? ` (${alternative.caveats.join('; ')})` : '';
            lines.push(`  - ${alternative.transport}${caveats}`);
          }
        }
        if (advice.excluded.length > 0) {
          lines.push('', 'Ruled out:');
          for (const { transport, reason } of advice.excluded)
            lines.push(`  - ${transport}: ${reason}`);
        }
        process.stdout.write(`${lines.join('\n')}\n`);
      }),
    );
}
