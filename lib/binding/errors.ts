// native/util/errors.cc
/**
 * Builds native errors; registered once at load (lib/binding/index.ts). For a librbd/librados
 * failure `props.errno` (negative) is set and `message` is the text after the code (the factory
 * names the errno and prefixes `${code}: `); for a closed handle `props.code` is 'ERR_CLOSED' and
 * `message` is the whole message ("image is closed").
 */
export type NativeErrorFactory = (
  message: string,
  props: { errno?: number; code?: 'ERR_CLOSED'; operation?: string; pool?: string; namespace?: string; image?: string; snapshot?: string; group?: string },
) => Error;

export interface ErrorsBinding {
  /** Makes every error the addon raises an instance built by `factory` (an RbdError). */
  setErrorFactory(factory: NativeErrorFactory): void;
  /** The error native code would raise for `rc` (negative errno) during `op`. */
  makeError(rc: number, op: string, pool?: string, image?: string, snap?: string): Error;
}

export const errorsFunctions: Record<keyof ErrorsBinding, true> = { setErrorFactory: true, makeError: true };
