// Microsoft 365 webhooks on Azure Functions: everything the app needs in one resource group.
// infra/deploy.sh deploys it through infra/subscription.bicep, which creates the group first.

targetScope = 'resourceGroup'

@description('Short prefix for every resource name (letters and digits).')
@minLength(3)
@maxLength(12)
param namePrefix string = 'm365hooks'

@description('Azure region; must offer Flex Consumption.')
param location string = resourceGroup().location

@description('Python version of the function app: what Flex Consumption runs and the code supports (3.10 left support on 2026-10-30 and cannot run this code). 3.12 is supported until 2028-10.')
@allowed([
  '3.11'
  '3.12'
  '3.13'
])
param pythonVersion string = '3.12'

@description('Most instances Flex Consumption may scale out to.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Memory per instance in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Storage redundancy. LRS is offered in every Flex Consumption region; choose ZRS (or GZRS) where the region offers it and the app must ride out a zone outage, GRS/GZRS where a regional outage must not lose queued notifications.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
  'Standard_RAGRS'
  'Standard_RAGZRS'
])
param storageSku string = 'Standard_LRS'

@description('Six-field NCRONTAB schedule of the renewal timer.')
param renewalSchedule string = '0 0 */6 * * *'

@description('Renew subscriptions that expire within this many days.')
@minValue(1)
@maxValue(179)
param renewalWindowDays int = 45

@description('Six-field NCRONTAB schedule of the change sweep, which reads every list not synced for sweepMaxAgeHours.')
param sweepSchedule string = '0 0 * * * *'

@description('Hours after which a list is read again without a notification (0: every run). Keeps every change token far from SharePoint\'s 60-day edge.')
@minValue(0)
@maxValue(720)
param sweepMaxAgeHours int = 24

@description('Hours after which a Graph resource (OneDrive, Outlook) is read again without a notification (0: every run). Graph may announce a drive change up to 6 hours late.')
@minValue(0)
@maxValue(720)
param graphSweepMaxAgeHours int = 6

@description('SharePoint Online tenant URL, e.g. https://contoso.sharepoint.com')
param sharePointTenantUrl string

@description('Public base URL SharePoint calls (custom domain or front door); empty means the app\'s own host name.')
param notificationBaseUrl string = ''

@description('Object id of whoever runs the deployment: granted Key Vault Secrets Officer on the app\'s vault, so that infra/deploy.sh can create the key ring that seals sink secrets. Empty grants no one.')
param deployerPrincipalId string = ''

@description('User for a person, ServicePrincipal for a pipeline identity.')
@allowed([
  'User'
  'ServicePrincipal'
])
param deployerPrincipalType string = 'User'

@description('Hours a sink may keep failing before it is disabled (its cursor is kept: enabling it resumes).')
@minValue(1)
@maxValue(720)
param sinkDisableAfterHours int = 72

@description('Always-ready instances for the HTTP functions (Flex Consumption "http" group): each is billed while idle, and spares notifications a cold start, which Graph fails after 3 s. 0: none.')
@minValue(0)
@maxValue(20)
param alwaysReady int = 0

@description('Send health alerts (docs/operations.md) to the URL in the vault secret alert-sink-url.')
param healthAlerts bool = false

@description('teams-workflow, or webhook (signed with the vault secret alert-sink-secret).')
@allowed([
  'teams-workflow'
  'webhook'
])
param alertSinkType string = 'teams-workflow'

@description('single: the Microsoft 365 tenant of this subscription. multi: every organisation that consents to the multi-tenant app (docs/tenants.md).')
@allowed([
  'single'
  'multi'
])
param tenancy string = 'single'

@description('With tenancy multi: the application (client) id of the multi-tenant app registration, whose federated credential is the app identity (infra/deploy.sh makes both).')
param multiTenantAppId string = ''

@description('App settings already on the function app (infra/deploy.sh reads them), kept under the template\'s own on a rerun.')
@secure()
param existingAppSettings object = {}

@description('Tags for every resource.')
param tags object = {
  application: 'm365-webhooks'
}

var suffix = uniqueString(resourceGroup().id, namePrefix)
// Key Vault names are global, 3-24 characters.
var keyVaultName = take('kv${namePrefix}${suffix}', 24)
var deploymentContainerName = 'app-package'
// Must match functions/core/storage.py: QUEUES and TABLES.
var queueNames = [
  'notifications'
  'notifications-poison'
  'deliveries'
  'deliveries-poison'
]
var tableNames = [
  'subscriptions'
  'checkpoints'
  'changes'
  'failures'
  'sinks'
  'sinkcursors'
  'sinkrates'
  'readleases'
  'itemfields'
  'alerts'
  'tenants'
]

module storage 'modules/storage.bicep' = {
  name: 'storage'
  params: {
    name: take(toLower('st${namePrefix}${suffix}'), 24)
    location: location
    sku: storageSku
    deploymentContainerName: deploymentContainerName
    queueNames: queueNames
    tableNames: tableNames
    tags: tags
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    logAnalyticsName: 'log-${namePrefix}-${suffix}'
    applicationInsightsName: 'appi-${namePrefix}-${suffix}'
    location: location
    tags: tags
  }
}

module app 'modules/functionapp.bicep' = {
  name: 'functionapp'
  params: {
    appName: 'func-${namePrefix}-${suffix}'
    planName: 'plan-${namePrefix}-${suffix}'
    identityName: 'id-${namePrefix}-${suffix}'
    location: location
    pythonVersion: pythonVersion
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    storageAccountName: storage.outputs.name
    blobEndpoint: storage.outputs.blobEndpoint
    queueEndpoint: storage.outputs.queueEndpoint
    tableEndpoint: storage.outputs.tableEndpoint
    deploymentContainerName: deploymentContainerName
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    sharePointTenantUrl: sharePointTenantUrl
    notificationBaseUrl: notificationBaseUrl
    renewalSchedule: renewalSchedule
    renewalWindowDays: renewalWindowDays
    sweepSchedule: sweepSchedule
    sweepMaxAgeHours: sweepMaxAgeHours
    graphSweepMaxAgeHours: graphSweepMaxAgeHours
    keyVaultName: keyVaultName
    sinkDisableAfterHours: sinkDisableAfterHours
    alwaysReady: alwaysReady
    healthAlerts: healthAlerts
    alertSinkType: alertSinkType
    tenancy: tenancy
    multiTenantAppId: multiTenantAppId
    existingAppSettings: existingAppSettings
    tags: tags
  }
}

module vault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  params: {
    name: keyVaultName
    location: location
    appPrincipalId: app.outputs.identityPrincipalId
    deployerPrincipalId: deployerPrincipalId
    deployerPrincipalType: deployerPrincipalType
    tags: tags
  }
}

module roles 'modules/roles.bicep' = {
  name: 'roles'
  params: {
    storageAccountName: storage.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    principalId: app.outputs.identityPrincipalId
  }
}

output functionAppName string = app.outputs.name
output functionAppUrl string = app.outputs.url
output notificationUrl string = app.outputs.notificationUrl
output identityClientId string = app.outputs.identityClientId
output identityPrincipalId string = app.outputs.identityPrincipalId
output vaultName string = vault.outputs.name
