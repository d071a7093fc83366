// The base model as an adapter names it (PEFT's base_model_name_or_path and revision in
// adapter_config.json). The adapter is committed with its task and read on other machines, so this is
// a name that means the same everywhere, never a path on this one:
//   - the default model (known by its file name and size): its Hugging Face repository and revision;
//   - another GGUF file: its general.name, else its file name;
//   - a Hugging Face folder: the repository and revision of a hub cache snapshot
//     (…/models--owner--name/snapshots/<commit>), else the hub id in config.json's _name_or_path, else
//     the folder's name.
// PEFT itself records whatever name_or_path the base was loaded with (a hub id, or a local path) and reads
// the field only in AutoPeftModel, to fetch the base; PeftModel.from_pretrained(base, dir) ignores it.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { DEFAULT_MODEL } from '../../store/modelManifest';
import { ggufString, readGguf } from './gguf';

export interface ModelIdentity {
  /** A Hugging Face id or a model's name: never a local path. */
  name: string;
  /** The repository commit, when the model is known to come from one. */
  revision: string | null;
}

const HUB_ID = /^[A-Za-z0-9][\w.-]*\/[\w.-]+$/;
const HUB_SNAPSHOT = /(?:^|[\\/])models--([\w.-]+?)--([\w.-]+)[\\/]snapshots[\\/]([0-9a-f]{40})[\\/]?$/;

/** What names the model at `modelPath` (a .gguf file or a Hugging Face folder) in an adapter's config. */
export function modelIdentity(modelPath: string): ModelIdentity {
  const full = path.resolve(modelPath);
  if (fs.statSync(full).isDirectory()) return folderIdentity(full);
  if (path.basename(full) === DEFAULT_MODEL.file && fs.statSync(full).size === DEFAULT_MODEL.size) {
    return { name: DEFAULT_MODEL.repo, revision: DEFAULT_MODEL.revision };
  }
  const name = ggufString(readGguf(full), 'general.name')?.trim();
  return { name: name || path.basename(full), revision: null };
}

function folderIdentity(dir: string): ModelIdentity {
  const snapshot = HUB_SNAPSHOT.exec(dir);
  if (snapshot) return { name: `${snapshot[1]}/${snapshot[2]}`, revision: snapshot[3] };
  let declared: unknown;
  try {
    declared = (JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>)._name_or_path;
  } catch {
    declared = undefined; // the loader reports a missing or bad config.json; a name is still owed here
  }
  if (typeof declared === 'string' && HUB_ID.test(declared)) return { name: declared, revision: null };
  return { name: path.basename(dir), revision: null };
}
