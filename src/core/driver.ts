import { FerryError } from './errors.js';

/**
 * Loads a driver's client package on first use, so that importing ferry never loads a
 * client the application did not install. A missing package becomes `DRIVER_MISSING` with
 * the command that fixes it.
 */
export async function loadDriver<T>(packageName: string, load: () => Promise<T>): Promise<T> {
  try {
    return await load();
  } catch (cause) {
    const code = (cause as { code?: unknown }).code;
    const message = cause instanceof Error ? cause.message : '';
    if (
      (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') &&
      message.includes(packageName)
    ) {
      throw new FerryError(
        'DRIVER_MISSING',
        `This driver needs the package ${packageName}: npm install ${packageName}`,
        { cause },
      );
    }
    throw cause;
  }
}
