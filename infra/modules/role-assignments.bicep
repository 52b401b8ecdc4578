// Who may do what, by built-in role definition id. Storage has shared keys off, so these
// assignments are the whole of data-plane access.
//
// The app's identity (host and app code alike):
//   Storage Blob Data Owner        host storage: the host creates its containers (keys, timer
//                                  schedule status, leases) and Flex Consumption reads the
//                                  deployment package; it also covers the app's `documents`
//                                  container, so Storage Blob Data Contributor would add nothing.
//   Storage Table Data Contributor the app's `uploadsessions` and `subscriptions` tables, and the
//                                  host's diagnostic-events tables.
//   Monitoring Metrics Publisher   Application Insights with local authentication off.
// No Storage Queue Data Contributor: the host reads queues only for blob and queue triggers, and
// this app has HTTP and timer triggers only (add it, and AzureWebJobsStorage__queueServiceUri, with
// the first such trigger).
//
// The optional deploying principal (a developer's `az login`, or the CI service principal):
//   Storage Table Data Contributor `uploadsession subscription activate|suspend|show`
//   Storage Blob Data Contributor  reading and cleaning up uploaded documents by hand

@description('Name of the storage account the roles apply to.')
param storageAccountName string

@description('Name of the Application Insights component the identity publishes telemetry to.')
param applicationInsightsName string

@description('Principal (object) id of the app\'s user-assigned managed identity.')
param identityPrincipalId string

@description('Object id of a developer or CI service principal to grant data access; empty: none.')
param principalId string = ''

@description('Kind of principalId: User for a person, ServicePrincipal for a CI identity.')
@allowed([
  'User'
  'ServicePrincipal'
  'Group'
])
param principalType string = 'User'

var storageBlobDataOwner = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b' // Storage Blob Data Owner
var storageBlobDataContributor = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe' // Storage Blob Data Contributor
var storageTableDataContributor = '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3' // Storage Table Data Contributor
var monitoringMetricsPublisher = '3913510d-42f4-4e42-8a64-420c390055eb' // Monitoring Metrics Publisher

var identityStorageRoles = [
  storageBlobDataOwner
  storageTableDataContributor
]
var principalStorageRoles = [
  storageTableDataContributor
  storageBlobDataContributor
]

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource identityStorageAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for roleId in identityStorageRoles: {
    name: guid(storage.id, identityPrincipalId, roleId)
    scope: storage
    properties: {
      principalId: identityPrincipalId
      principalType: 'ServicePrincipal'
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
    }
  }
]

resource identityTelemetry 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(applicationInsights.id, identityPrincipalId, monitoringMetricsPublisher)
  scope: applicationInsights
  properties: {
    principalId: identityPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisher)
  }
}

resource principalStorageAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for roleId in principalStorageRoles: if (!empty(principalId)) {
    name: guid(storage.id, principalId, roleId)
    scope: storage
    properties: {
      principalId: principalId
      principalType: principalType
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
    }
  }
]
