// The function app: Flex Consumption (FC1), Linux, Python, with a user-assigned identity that
// reaches storage, Application Insights and SharePoint. No keys or secrets in any setting.

param appName string
param planName string
param identityName string
param location string
param pythonVersion string
param maximumInstanceCount int
param instanceMemoryMB int
param storageAccountName string
param blobEndpoint string
param queueEndpoint string
param tableEndpoint string
param deploymentContainerName string
param applicationInsightsName string
param sharePointTenantUrl string
param notificationBaseUrl string
param renewalSchedule string
param renewalWindowDays int
param sweepSchedule string
param sweepMaxAgeHours int
param graphSweepMaxAgeHours int
@description('The vault holding the key ring that seals sink secrets (secret sink-sealing-keys).')
param keyVaultName string
param sinkDisableAfterHours int
@description('HTTP instances kept warm (Flex Consumption always-ready, the "http" group); 0: none.')
param alwaysReady int = 0
@description('Send health alerts to the URL in the vault secret alert-sink-url.')
param healthAlerts bool = false
@description('teams-workflow, or webhook (signed with the vault secret alert-sink-secret).')
param alertSinkType string = 'teams-workflow'
@description('single, or multi: every tenant that consents to the multi-tenant app (docs/tenants.md).')
param tenancy string = 'single'
@description('The multi-tenant app registration\'s application (client) id, with tenancy multi.')
param multiTenantAppId string = ''
@description('The settings already on the app, merged under the template\'s own so a rerun keeps them.')
@secure()
param existingAppSettings object = {}
param tags object = {}

// The app's default host name (no unique-hostname scope is set, so it is this), unless a custom
// domain or a front door is named.
var publicBaseUrl = empty(notificationBaseUrl) ? 'https://${appName}.azurewebsites.net' : notificationBaseUrl

var alertSecretReference = '@Microsoft.KeyVault(VaultName=${keyVaultName};SecretName=alert-sink-secret)'

// Every setting the code reads (functions/core/settings.py), set in one place.
var ownSettings = {
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identity.properties.clientId
  AzureWebJobsStorage__blobServiceUri: blobEndpoint
  AzureWebJobsStorage__queueServiceUri: queueEndpoint
  AzureWebJobsStorage__tableServiceUri: tableEndpoint
  APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsights.properties.ConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identity.properties.clientId};Authorization=AAD'
  NOTIFICATION_BASE_URL: publicBaseUrl
  SHAREPOINT_TENANT_URL: sharePointTenantUrl
  GRAPH_BASE_URL: 'https://graph.microsoft.com'
  SHAREPOINT_AUTH: 'managed_identity'
  SHAREPOINT_CLIENT_ID: identity.properties.clientId
  RENEWAL_SCHEDULE: renewalSchedule
  RENEWAL_WINDOW_DAYS: string(renewalWindowDays)
  SWEEP_SCHEDULE: sweepSchedule
  SINK_DISABLE_AFTER_HOURS: string(sinkDisableAfterHours)
  SINK_RETRY_BASE_SECONDS: '30'
  SINK_CATCH_UP_SCHEDULE: '0 */5 * * * *'
  // A Key Vault reference: the key ring itself never appears in a setting or template.
  SINK_SEALING_KEYS: '@Microsoft.KeyVault(VaultName=${keyVaultName};SecretName=sink-sealing-keys)'
  // Sync functions share this pool, which is otherwise a few threads per core: slow connector
  // receivers must not take every thread (host.json runs up to 16 + 16 messages of a queue
  // function at once).
  PYTHON_THREADPOOL_THREAD_COUNT: '32'
  SWEEP_MAX_AGE_HOURS: string(sweepMaxAgeHours)
  GRAPH_SWEEP_MAX_AGE_HOURS: string(graphSweepMaxAgeHours)
  SILENT_AFTER_HOURS: '24'
  // Health alerts: the sink's URL (a workflow URL carries its signature) and a webhook's signing
  // secret are Key Vault references, never plain settings (docs/operations.md, "Health alerts").
  ALERT_SINK_URL: healthAlerts ? '@Microsoft.KeyVault(VaultName=${keyVaultName};SecretName=alert-sink-url)' : ''
  ALERT_SINK_TYPE: alertSinkType
  ALERT_SINK_SECRET: (healthAlerts && alertSinkType == 'webhook') ? alertSecretReference : ''
  ALERT_AFTER_FAILED_READS: '5'
  // Teams (docs/teams.md): rich notifications are encrypted to the Key Vault certificate
  // teams-notifications, which deploy.sh creates once. Its backing secret, certificate and key,
  // reaches the app as a reference. During a rollover TEAMS_PREVIOUS_CERTIFICATE names the old
  // version the same way, and a rerun keeps it. Validation tokens name this identity as audience.
  TEAMS_CERTIFICATE: '@Microsoft.KeyVault(VaultName=${keyVaultName};SecretName=teams-notifications)'
  GRAPH_APP_ID: identity.properties.clientId
  TEAMS_KEEP_PREVIEW: 'true'
  // Many tenants (docs/tenants.md): the home tenant is this deployment's own; guests are served
  // through the multi-tenant app, whose credential is this identity (a federated credential).
  SHAREPOINT_TENANT_ID: tenant().tenantId
  TENANCY: tenancy
  MULTI_TENANT_APP_ID: multiTenantAppId
}

// Read here rather than passed as an output, so it never shows in deployment outputs.
resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: identityName
  location: location
  tags: tags
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: Flex Consumption zone redundancy is offered in few regions; turn it on per region
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true
  }
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_222: SharePoint must reach the notification URL from the internet
  // checkov:skip=CKV_AZURE_17: SharePoint presents no client certificate; requests are checked by clientState
  // checkov:skip=CKV_AZURE_212: Flex Consumption scales out on demand; always-ready instances are a cost choice (the alwaysReady parameter)
  // checkov:skip=CKV_AZURE_213: App Service health check is not available on Flex Consumption; /api/health serves probes
  // checkov:skip=CKV_AZURE_78: Flex Consumption serves no FTP and does not take siteConfig.ftpsState (ARM error 51021 in some regions); packages go through the identity-only blob container
  name: appName
  location: location
  tags: tags
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identity.id}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    publicNetworkAccess: 'Enabled'
    // Key Vault references resolve with the app's own identity (it has no system identity).
    keyVaultReferenceIdentity: identity.id
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      http20Enabled: true
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${blobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identity.id
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
        // Graph fails an answer later than 3 s; an always-ready instance spares the HTTP functions
        // a cold start. Billed while idle, so it is a choice (docs/deploy.md).
        alwaysReady: (alwaysReady > 0) ? [
          {
            name: 'http'
            instanceCount: alwaysReady
          }
        ] : []
      }
      runtime: {
        name: 'python'
        version: pythonVersion
      }
    }
  }
}

// The code's settings over the ones already on the app, so that a rerun keeps settings added by
// hand (infra/deploy.sh reads them first); on a clash the template's value wins.
resource appSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  // Checkov reads every sites/config as the site's `web` config; this one holds app settings only.
  // checkov:skip=CKV_AZURE_63: HTTP logging is the `logs` config; the app logs to Application Insights
  // checkov:skip=CKV_AZURE_65: detailed error messages are the `logs` config, not app settings
  // checkov:skip=CKV_AZURE_66: failed request tracing is the `logs` config, not app settings
  // checkov:skip=CKV_AZURE_222: public network access is the site's (skipped there: Microsoft 365 must reach it)
  // checkov:skip=CKV_AZURE_80: a Python app; no .NET Framework version applies
  // checkov:skip=CKV_AZURE_13: Easy Auth would refuse Microsoft 365's calls; the API takes function keys, notifications clientState
  // checkov:skip=CKV_AZURE_88: Flex Consumption keeps its package in blob storage and has no Azure Files share
  parent: functionApp
  name: 'appsettings'
  properties: union(existingAppSettings, ownSettings)
}

output name string = functionApp.name
output url string = 'https://${functionApp.properties.defaultHostName}'
output notificationUrl string = '${publicBaseUrl}/api/notifications/sharepoint'
output identityClientId string = identity.properties.clientId
output identityPrincipalId string = identity.properties.principalId
output storageAccountName string = storageAccountName
