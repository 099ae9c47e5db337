// Start and stop like a server: close callbacks registered as things start,
// run once in reverse order; the first SIGINT/SIGTERM stops gracefully, a
// second one (or the timeout) exits at once.
import type { Logger } from './log.ts';

type Closer = { name: string; close: () => Promise<void> | void };

export class Lifecycle {
  private readonly closers: Closer[] = [];
  private stopping: Promise<void> | undefined;
  private readonly log: Logger;

  constructor(log: Logger) {
    this.log = log;
  }

  get isStopping(): boolean {
    return this.stopping !== undefined;
  }

  /** Registers a close callback; they run last-registered first. */
  onStop(name: string, close: () => Promise<void> | void): void {
    this.closers.push({ name, close });
  }

  /** Runs every close callback once; later calls return the same promise. */
  stop(reason: string): Promise<void> {
    this.stopping ??= (async () => {
      this.log.info({ reason }, 'stopping');
      for (const { name, close } of [...this.closers].reverse()) {
        try {
          await close();
        } catch (error) {
          this.log.error({ err: error, closer: name }, 'error while stopping');
        }
      }
    })();
    return this.stopping;
  }

  /** Stops on SIGINT/SIGTERM; a second signal or the timeout forces exit. */
  handleSignals({ timeoutMs = 10_000, exitCode = 0 }: { timeoutMs?: number; exitCode?: number } = {}): void {
    const onSignal = (signal: NodeJS.Signals) => {
      if (this.stopping) {
        this.log.warn({ signal }, 'second signal: exiting now');
        process.exit(1);
      }
      const timer = setTimeout(() => {
        this.log.error({ timeoutMs }, 'graceful stop timed out: exiting');
        process.exit(1);
      }, timeoutMs);
      timer.unref();
      void this.stop(signal).then(() => process.exit(exitCode));
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  }
}
