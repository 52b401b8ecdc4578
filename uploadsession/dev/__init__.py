"""Development tools: the local Functions host, its timers, dev tokens and certificates.

Never imported by the service (a test checks it); excluded from the deployment package.
"""
