/**
 * A runtime layer read from disk: every file under `directory` is a key (its path below the
 * directory with '/' read as '.'), its content the value. `symlinkRoot` is watched: publishing a
 * new tree is swapping that link, and the layer is read again when it points somewhere new.
 */
export interface DiskRuntimeLayer {
  readonly name: string;
  readonly kind: 'disk';
  readonly symlinkRoot: string;
  /** symlink_root joined with subdirectory and, with append_service_cluster, node.cluster. */
  readonly directory: string;
}
