// Opaque native handles (type-tagged externals made by native/util/handles.cc).
export type ClusterHandle = { readonly __cluster: unique symbol };
export type IoCtxHandle = { readonly __ioctx: unique symbol };
export type ImageHandle = { readonly __image: unique symbol };
/** A running copy job (native/copy/binding.cc). */
export type CopyJobHandle = { readonly __copyJob: unique symbol };
