#!/usr/bin/env bash
# Builds the platform's images for linux/amd64 (SageMaker's instances) and pushes them to ECR.
# Run from the repository root; CodeBuild runs it through containers/buildspec.yml on deploy, and a
# user with Docker and AWS credentials can run it the same way:
#
#   REGISTRY=123456789012.dkr.ecr.eu-west-1.amazonaws.com \
#   IMAGES="training=abalone-mlops-dev-training:sha-0123456789abcdef inference=abalone-mlops-dev-inference:sha-..." \
#   bash containers/build_images.sh
#
# The base images come from ECR Public's mirror of Docker's official images. The pull is authenticated,
# so it counts against this account's quotas, not the anonymous ones that CodeBuild's shared IP
# addresses use up; ECR Public issues its tokens in us-east-1 only ("Registry authentication in
# Amazon ECR public", Amazon ECR Public User Guide).
set -euo pipefail

: "${REGISTRY:?set REGISTRY to the ECR registry, e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com}"
: "${IMAGES:?set IMAGES to name=repository:tag pairs, e.g. training=abalone-mlops-dev-training:sha-0123456789abcdef}"
region="$(cut -d. -f4 <<<"$REGISTRY")"

aws ecr-public get-login-password --region us-east-1 | docker login --username AWS --password-stdin public.ecr.aws
aws ecr get-login-password --region "$region" | docker login --username AWS --password-stdin "$REGISTRY"
for image in $IMAGES; do
    name="${image%%=*}"
    target="$REGISTRY/${image#*=}"
    case "$name" in
        training | inference) ;;
        *) echo "unknown image '$name' in IMAGES; expected training or inference" >&2; exit 2 ;;
    esac
    docker build --platform linux/amd64 --file "containers/$name/Dockerfile" --tag "$target" .
    docker push "$target"
done
