/**
 * A bad setting or bad usage of a command: the entry point prints its message (which starts with
 * the setting's name) without a stack trace and exits with code 2, as for a commander usage error.
 * Anything else that fails is a runtime failure (exit code 1).
 */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
}
