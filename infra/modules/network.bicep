// Network isolation (main.bicep's vnetEnabled): a virtual network whose `app` subnet the function
// app integrates with (Flex Consumption delegates it to Microsoft.App/environments) and whose
// `private-endpoints` subnet holds the storage account's blob and table private endpoints, with
// the private DNS zones that make the account's usual host names resolve to them inside the
// network. The storage account itself then refuses public traffic (storage.bicep).
// No queue or file endpoint: the app and its host use blobs and tables only.

@description('Name of the virtual network.')
param name string

@description('Region of the network and the private endpoints.')
param location string

@description('Tags for every resource.')
param tags object

@description('Name prefix of the network security groups (one per subnet).')
param networkSecurityGroupPrefix string

@description('Name prefix of the private endpoints.')
param privateEndpointPrefix string

@description('Resource id of the storage account the private endpoints reach.')
param storageAccountId string

@description('Address space of the virtual network.')
param addressPrefix string = '10.0.0.0/16'

@description('The subnet the function app integrates with (Flex Consumption: /28 at least).')
param appSubnetPrefix string = '10.0.1.0/24'

@description('The subnet of the private endpoints.')
param privateEndpointSubnetPrefix string = '10.0.2.0/24'

// The storage services reached privately, and their private DNS zones in this cloud
// (privatelink.blob.core.windows.net in the public cloud).
var storageServices = [
  'blob'
  'table'
]

var subnets = [
  {
    name: 'app'
    prefix: appSubnetPrefix
    delegations: [
      {
        name: 'Microsoft.App/environments'
        properties: {
          serviceName: 'Microsoft.App/environments'
        }
      }
    ]
  }
  {
    name: 'private-endpoints'
    prefix: privateEndpointSubnetPrefix
    delegations: []
  }
]

// Each subnet gets its own NSG with only the platform's default rules (the VNet's own traffic,
// the Azure load balancer; nothing inbound from the internet).
resource networkSecurityGroups 'Microsoft.Network/networkSecurityGroups@2024-05-01' = [
  for subnet in subnets: {
    name: '${networkSecurityGroupPrefix}${subnet.name}'
    location: location
    tags: tags
    properties: {
      securityRules: []
    }
  }
]

resource vnet 'Microsoft.Network/virtualNetworks@2024-05-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    addressSpace: {
      addressPrefixes: [
        addressPrefix
      ]
    }
    subnets: [
      for (subnet, i) in subnets: {
        name: subnet.name
        properties: {
          addressPrefix: subnet.prefix
          networkSecurityGroup: {
            id: networkSecurityGroups[i].id
          }
          privateEndpointNetworkPolicies: 'Disabled'
          delegations: subnet.delegations
        }
      }
    ]
  }
}

resource dnsZones 'Microsoft.Network/privateDnsZones@2020-06-01' = [
  for service in storageServices: {
    name: 'privatelink.${service}.${environment().suffixes.storage}'
    location: 'global'
    tags: tags
  }
]

resource dnsZoneLinks 'Microsoft.Network/privateDnsZones/virtualNetworkLinks@2020-06-01' = [
  for i in range(0, length(storageServices)): {
    parent: dnsZones[i]
    name: '${name}-link'
    location: 'global'
    tags: tags
    properties: {
      registrationEnabled: false
      virtualNetwork: {
        id: vnet.id
      }
    }
  }
]

resource privateEndpoints 'Microsoft.Network/privateEndpoints@2024-05-01' = [
  for (service, i) in storageServices: {
    name: '${privateEndpointPrefix}${service}'
    location: location
    tags: tags
    properties: {
      subnet: {
        id: '${vnet.id}/subnets/private-endpoints'
      }
      privateLinkServiceConnections: [
        {
          name: '${privateEndpointPrefix}${service}'
          properties: {
            privateLinkServiceId: storageAccountId
            groupIds: [
              service
            ]
          }
        }
      ]
    }
  }
]

resource privateDnsZoneGroups 'Microsoft.Network/privateEndpoints/privateDnsZoneGroups@2024-05-01' = [
  for i in range(0, length(storageServices)): {
    parent: privateEndpoints[i]
    name: 'default'
    properties: {
      privateDnsZoneConfigs: [
        {
          name: replace(dnsZones[i].name, '.', '-')
          properties: {
            privateDnsZoneId: dnsZones[i].id
          }
        }
      ]
    }
  }
]

output vnetName string = vnet.name

@description('The subnet the function app integrates with.')
output appSubnetId string = '${vnet.id}/subnets/app'
