#!/bin/sh
# Register the namespace the workers use (a no-op when it exists), once the frontend answers.
set -eu

namespace="$1"
until temporal operator cluster health --address "$TEMPORAL_ADDRESS" >/dev/null 2>&1; do
    sleep 1
done
temporal operator namespace describe --namespace "$namespace" --address "$TEMPORAL_ADDRESS" \
    >/dev/null 2>&1 ||
    temporal operator namespace create --namespace "$namespace" --retention 7d \
        --address "$TEMPORAL_ADDRESS"
echo "namespace $namespace is ready"
