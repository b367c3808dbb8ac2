"""The `azure-container-instance:push` pool type: each flow run is an Azure Container Instances
container group.

Modules: credentials (sign-in and client settings, shared with provisioners/azure).
"""
