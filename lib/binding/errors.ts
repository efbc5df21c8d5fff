// native/util/errors.cc
/** Builds native errors; registered once at load (lib/binding/index.ts). */
export type NativeErrorFactory = (
  message: string,
  props: { errno: number; operation: string; pool?: string; namespace?: string; image?: string; snapshot?: string },
) => Error;

export interface ErrorsBinding {
  /** Makes every error the addon raises an instance built by `factory` (an RbdError). */
  setErrorFactory(factory: NativeErrorFactory): void;
  /** The error native code would raise for `rc` (negative errno) during `op`. */
  makeError(rc: number, op: string, pool?: string, image?: string, snap?: string): Error;
}

export const errorsFunctions: Record<keyof ErrorsBinding, true> = { setErrorFactory: true, makeError: true };
