"""energy-libs-compat: the seed's ``libs`` import paths as deprecated aliases of energy-libs.

For services that switch the dependency first and the code later: every old module
(``libs.common.exceptions``, ``libs.common.auth``, ``libs.monitoring.metrics``,
``libs.messaging.mqtt``, ...) is the new one under its old name and emits one
``DeprecationWarning`` naming the new import. Rewrite the imports with
``python -m energy_migrate migrate PATH``, then drop this distribution.
"""
