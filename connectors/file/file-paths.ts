// The file a FileSource or FileSink key names, as the worker allows it: its real path inside the
// worker's `allowed.paths` (the worker checked the config already; this is the check at the open,
// and the path to open). Outside a worker there is no allow-list, so no file is touched.
import { FatalError, type TaskContext } from '../../runtime/api.js';

export function allowedFile(context: TaskContext, key: string, path: string): string {
  if (!context.paths)
    throw new FatalError(
      'FILE_PATH_NOT_ALLOWED',
      `${key} "${path}" cannot be checked against allowed.paths: this task runs without a worker's file allow-list`,
      { stage: 'TASK_START' },
    );
  return context.paths.resolve(path, key);
}
