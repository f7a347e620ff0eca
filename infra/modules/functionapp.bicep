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
param tags object = {}

// The app's default host name (no unique-hostname scope is set, so it is this), unless a custom
// domain or a front door is named.
var publicBaseUrl = empty(notificationBaseUrl) ? 'https://${appName}.azurewebsites.net' : notificationBaseUrl

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
  // checkov:skip=CKV_AZURE_212: Flex Consumption scales out on demand; always-ready instances are a cost choice
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
      // Every setting the code reads (functions/core/settings.py), set in one place.
      appSettings: [
        {
          name: 'AzureWebJobsStorage__credential'
          value: 'managedidentity'
        }
        {
          name: 'AzureWebJobsStorage__clientId'
          value: identity.properties.clientId
        }
        {
          name: 'AzureWebJobsStorage__blobServiceUri'
          value: blobEndpoint
        }
        {
          name: 'AzureWebJobsStorage__queueServiceUri'
          value: queueEndpoint
        }
        {
          name: 'AzureWebJobsStorage__tableServiceUri'
          value: tableEndpoint
        }
        {
          name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
          value: applicationInsights.properties.ConnectionString
        }
        {
          name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING'
          value: 'ClientId=${identity.properties.clientId};Authorization=AAD'
        }
        {
          name: 'NOTIFICATION_BASE_URL'
          value: publicBaseUrl
        }
        {
          name: 'SHAREPOINT_TENANT_URL'
          value: sharePointTenantUrl
        }
        {
          name: 'GRAPH_BASE_URL'
          value: 'https://graph.microsoft.com'
        }
        {
          name: 'SHAREPOINT_AUTH'
          value: 'managed_identity'
        }
        {
          name: 'SHAREPOINT_CLIENT_ID'
          value: identity.properties.clientId
        }
        {
          name: 'RENEWAL_SCHEDULE'
          value: renewalSchedule
        }
        {
          name: 'RENEWAL_WINDOW_DAYS'
          value: string(renewalWindowDays)
        }
        {
          name: 'SWEEP_SCHEDULE'
          value: sweepSchedule
        }
        {
          name: 'SINK_DISABLE_AFTER_HOURS'
          value: string(sinkDisableAfterHours)
        }
        {
          name: 'SINK_RETRY_BASE_SECONDS'
          value: '30'
        }
        {
          name: 'SINK_CATCH_UP_SCHEDULE'
          value: '0 */5 * * * *'
        }
        {
          // A Key Vault reference: the key ring itself never appears in a setting or template.
          name: 'SINK_SEALING_KEYS'
          value: '@Microsoft.KeyVault(VaultName=${keyVaultName};SecretName=sink-sealing-keys)'
        }
        {
          // Sync functions share this pool, which is otherwise a few threads per core: slow
          // connector receivers must not take every thread (host.json runs up to 16 + 16
          // messages of a queue function at once).
          name: 'PYTHON_THREADPOOL_THREAD_COUNT'
          value: '32'
        }
        {
          name: 'SWEEP_MAX_AGE_HOURS'
          value: string(sweepMaxAgeHours)
        }
        {
          name: 'GRAPH_SWEEP_MAX_AGE_HOURS'
          value: string(graphSweepMaxAgeHours)
        }
      ]
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
      }
      runtime: {
        name: 'python'
        version: pythonVersion
      }
    }
  }
}

output name string = functionApp.name
output url string = 'https://${functionApp.properties.defaultHostName}'
output notificationUrl string = '${publicBaseUrl}/api/notifications/sharepoint'
output identityClientId string = identity.properties.clientId
output identityPrincipalId string = identity.properties.principalId
output storageAccountName string = storageAccountName
