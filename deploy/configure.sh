#!/usr/bin/env bash
# Copies deploy/ to OUT_DIR with the placeholders replaced, ready for `kubectl apply -k` and
# `gcloud run services replace`. The repository's files keep their placeholders.
#
#   PROJECT_ID=my-project REGION=us-central1 CLUSTER_LOCATION=us-central1-a CLUSTER_NAME=workload-id \
#   TAG=0.1.0 SERVICE_URL=https://auth-server-abc123-uc.a.run.app deploy/configure.sh ./deploy.local
#
# SERVICE_URL may be left unset until the Cloud Run service exists (overlays/in-cluster does not use it).
# overlays/federated also takes PROJECT_NUMBER, POOL_ID and PROVIDER_ID (the workload identity pool
# and provider); left unset, their placeholders stay.
set -euo pipefail

out=${1:?usage: deploy/configure.sh OUT_DIR (with PROJECT_ID, REGION, CLUSTER_LOCATION, CLUSTER_NAME, TAG, SERVICE_URL set)}
here=$(cd "$(dirname "$0")" && pwd)

for name in PROJECT_ID REGION CLUSTER_LOCATION CLUSTER_NAME TAG; do
  if [ -z "${!name:-}" ]; then
    echo "configure.sh: $name is not set" >&2
    exit 2
  fi
done
service_url=${SERVICE_URL:-https://auth-server.invalid}
service_url=${service_url%/}
case "$service_url" in
  https://*) service_host=${service_url#https://} ;;
  *) echo "configure.sh: SERVICE_URL must start with https:// (got \"$service_url\")" >&2; exit 2 ;;
esac
case "$service_host" in
  */*) echo "configure.sh: SERVICE_URL must be an origin, with no path (got \"$service_url\")" >&2; exit 2 ;;
esac

mkdir -p "$out"
cp -R "$here/." "$out/"
rm -f "$out/configure.sh"
# Whole words only (\b), so PROJECT_ID never matches inside another name. perl rather than sed -i,
# whose flags differ between GNU and BSD (macOS). An optional value left unset keeps its placeholder.
export PROJECT_ID REGION CLUSTER_LOCATION CLUSTER_NAME TAG
export SERVICE_HOST=$service_host
find "$out" -type f \( -name '*.yaml' -o -name '*.json' \) -exec perl -pi -e \
  's/\b(PROJECT_ID|PROJECT_NUMBER|POOL_ID|PROVIDER_ID|CLUSTER_LOCATION|CLUSTER_NAME|REGION|SERVICE_HOST|TAG)\b/$ENV{$1} \/\/ $1/ge' {} +
echo "configure.sh: wrote $out (service host: $service_host)"
