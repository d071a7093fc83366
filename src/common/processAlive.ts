// Whether a process of this machine is still running: what tells a lock or a temporary file left by a
// crashed process from one whose owner is at work. Pure Node.

/** True when a process with this id runs on this machine (or may: one of another user counts). */
export function processAlive(pid: number): boolean {
  // 0 and negative ids would signal process groups; they are never a lock owner's.
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
