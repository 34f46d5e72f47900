/**
 * Integration suites find real services through environment variables. Without the
 * variable a suite is skipped, visibly; with FERRY_REQUIRE_SERVICES=1 (set by .ci/run) a
 * missing variable fails the run instead, so CI always exercises the real services.
 */
export function serviceUrl(variable: string): string | undefined {
  const value = process.env[variable];
  if (value) return value;
  if (process.env.FERRY_REQUIRE_SERVICES === '1') {
    throw new Error(
      `${variable} is not set but FERRY_REQUIRE_SERVICES=1: this suite must run against a real service`,
    );
  }
  return undefined;
}
