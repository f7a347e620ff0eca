// The whole deployment at subscription scope: the resource group, then main.bicep inside it.
// One template for both `az deployment sub what-if` (which works before the group exists, and
// creates nothing) and `az deployment sub create`. infra/deploy.sh uses it; the parameters are
// main.bicep's, passed through unchanged.

targetScope = 'subscription'

@description('Resource group to create (or update) and deploy into.')
@minLength(1)
@maxLength(90)
param resourceGroupName string

@description('Azure region of the group and every resource; must offer Flex Consumption.')
param location string

@minLength(3)
@maxLength(12)
param namePrefix string = 'm365hooks'

@allowed([
  '3.11'
  '3.12'
  '3.13'
])
param pythonVersion string = '3.12'

@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
  'Standard_RAGRS'
  'Standard_RAGZRS'
])
param storageSku string = 'Standard_LRS'

param renewalSchedule string = '0 0 */6 * * *'

@minValue(1)
@maxValue(179)
param renewalWindowDays int = 45

param sweepSchedule string = '0 0 * * * *'

@minValue(0)
@maxValue(720)
param sweepMaxAgeHours int = 24

@minValue(0)
@maxValue(720)
param graphSweepMaxAgeHours int = 6

param sharePointTenantUrl string

param notificationBaseUrl string = ''

param deployerPrincipalId string = ''

@allowed([
  'User'
  'ServicePrincipal'
])
param deployerPrincipalType string = 'User'

@minValue(1)
@maxValue(720)
param sinkDisableAfterHours int = 72

@minValue(0)
@maxValue(20)
param alwaysReady int = 0

param healthAlerts bool = false

@allowed([
  'teams-workflow'
  'webhook'
])
param alertSinkType string = 'teams-workflow'

@allowed([
  'single'
  'multi'
])
param tenancy string = 'single'

param multiTenantAppId string = ''

@secure()
param existingAppSettings object = {}

param tags object = {
  application: 'm365-webhooks'
}

resource group 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: resourceGroupName
  location: location
  tags: tags
}

module app 'main.bicep' = {
  name: 'm365-webhooks'
  scope: group
  params: {
    namePrefix: namePrefix
    location: location
    pythonVersion: pythonVersion
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    storageSku: storageSku
    renewalSchedule: renewalSchedule
    renewalWindowDays: renewalWindowDays
    sweepSchedule: sweepSchedule
    sweepMaxAgeHours: sweepMaxAgeHours
    graphSweepMaxAgeHours: graphSweepMaxAgeHours
    sharePointTenantUrl: sharePointTenantUrl
    notificationBaseUrl: notificationBaseUrl
    deployerPrincipalId: deployerPrincipalId
    deployerPrincipalType: deployerPrincipalType
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

output resourceGroupName string = group.name
output functionAppName string = app.outputs.functionAppName
output functionAppUrl string = app.outputs.functionAppUrl
output notificationUrl string = app.outputs.notificationUrl
output identityClientId string = app.outputs.identityClientId
output identityPrincipalId string = app.outputs.identityPrincipalId
output vaultName string = app.outputs.vaultName
