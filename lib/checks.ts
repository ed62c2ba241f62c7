/** Small validators shared by the providers' `check` (pure). */

export interface CheckFailure {
  property: string;
  reason: string;
}

/** No failure when `value` is an absolute path; otherwise one naming the property and value. */
export function absolutePath(property: string, value: unknown, what = "path"): CheckFailure[] {
  return typeof value === "string" && value.startsWith("/")
    ? []
    : [{ property, reason: `${what} ${JSON.stringify(value)} must be an absolute path` }];
}

/**
 * Why `value` is not a plain http(s) URL that may be written into apt's
 * sources or configuration, or undefined when it is. Whitespace, control
 * characters, quotes, backslashes and shell or apt.conf syntax are refused
 * outright (a URL that needs them can percent-encode them).
 */
export function httpUrlProblem(value: string): string | undefined {
  const rule = "must be an http:// or https:// URL";
  // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
  if (/[\u0000-\u0020\u007f"'`\\$;&|<>{}()]/.test(value)) {
    return `${rule} without spaces, quotes, control characters or any of \\ $ ; & | < > { } ( )`;
  }
  try {
    const u = new URL(value);
    if ((u.protocol === "http:" || u.protocol === "https:") && u.hostname !== "") return undefined;
  } catch {
    // not a URL
  }
  return rule;
}

/** `value` with an http(s) URL's `user:password@` shown as `***@`, for messages, logs and artifacts. */
export function redactUserinfo(value: string): string {
  // Up to the last "@" before the path, as URL parsers split it.
  return value.replace(/^(https?:\/\/)[^/?#]*@/i, "$1***@");
}

/** Whether an http(s) URL carries credentials (`user[:password]@` before the host). */
export function hasUserinfo(value: string): boolean {
  return redactUserinfo(value) !== value;
}
