// The vault that keeps the key ring sealing sink secrets (SINK_SEALING_KEYS). RBAC only: the app's
// identity reads secrets (Key Vault Secrets User); whoever runs deploy.sh may write them (Key
// Vault Secrets Officer), so that it can create the key ring once. The app setting is a Key Vault
// reference, so the key never appears in a setting, a template or a deployment output.

param name string
param location string
@description('The app identity, which reads the key ring.')
param appPrincipalId string
@description('Who runs the deployment and creates the key ring once; empty grants no one.')
param deployerPrincipalId string = ''
param deployerPrincipalType string = 'User'
param tags object = {}

var keyVaultSecretsUser = '4633458b-17de-408a-b874-0445c86b69e6'
var keyVaultSecretsOfficer = 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'
// The Teams certificate (docs/teams.md): ARM has no resource type for a Key Vault certificate, so
// deploy.sh creates it once with `az keyvault certificate create`.
var keyVaultCertificatesOfficer = 'a4417e6f-fecd-4de8-b567-7b0420556985'

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  // checkov:skip=CKV_AZURE_189: Flex Consumption resolves Key Vault references over the public endpoint unless the app is VNet-integrated; access is RBAC-only
  // checkov:skip=CKV_AZURE_109: App Service Key Vault references are not a trusted service that can pass a firewall; add a private endpoint with VNet integration to close it
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    // A purged key ring would leave every sealed sink secret unreadable.
    enablePurgeProtection: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource appReadsSecrets 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, appPrincipalId, keyVaultSecretsUser)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUser)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource deployerWritesSecrets 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(deployerPrincipalId)) {
  name: guid(vault.id, deployerPrincipalId, keyVaultSecretsOfficer)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsOfficer)
    principalId: deployerPrincipalId
    principalType: deployerPrincipalType
  }
}

resource deployerWritesCertificates 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(deployerPrincipalId)) {
  name: guid(vault.id, deployerPrincipalId, keyVaultCertificatesOfficer)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultCertificatesOfficer)
    principalId: deployerPrincipalId
    principalType: deployerPrincipalType
  }
}

output name string = vault.name
