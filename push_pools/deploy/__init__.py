"""Deploying flows: the push-pools.yaml project file, build / push / pull steps, entrypoints.

Submodules import pydantic, yaml and the client lazily, so importing this package stays cheap;
import what you need from the submodules (`push_pools.deploy.sdk.deploy_flow`, ...).
"""
