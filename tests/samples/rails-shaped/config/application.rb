# rails app config
